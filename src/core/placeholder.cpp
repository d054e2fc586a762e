// Placeholder until the core lands; replaced by src/core/api/*.
#include "relyloop/core.h"
