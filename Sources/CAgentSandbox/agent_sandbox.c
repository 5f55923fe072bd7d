#include "agent_sandbox.h"

int agent_sandbox_version(void) { return 1; }
