// CAgentSandbox: the only code that runs in the child between clone and exec.
// STUB: filled in by the sandbox work.
#ifndef AGENT_SANDBOX_H
#define AGENT_SANDBOX_H

int agent_sandbox_version(void);

#endif
