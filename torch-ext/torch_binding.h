// Op surface of the extension: the functions torch_binding.cpp registers.
#pragma once
#include "../sage_attention/fwd.h"
#include "../sage_attention/quant_helpers.h"
