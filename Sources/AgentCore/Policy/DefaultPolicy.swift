// The agent's built-in policy, embedded so a copied `agent` binary needs no files next
// to it. The text must equal `policies/policy.json` byte for byte (a unit test checks
// it); edit the JSON file and paste it here, keeping the blank line before the closing
// delimiter (it stands for the file's final newline).

/// The built-in agent policy text.
public enum DefaultPolicy {
    /// The text of `policies/policy.json`.
    public static let text = #"""
{
  "comment": "The agent's built-in policy: what jobs on this agent may do at most. Jobs and the CLI may only narrow it. See policies/README.md.",
  "capabilities": [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"
  ],
  "seccompProfile": "default",
  "allowHostNetwork": false,
  "allowOutboundNetwork": false,
  "network": {
    "stack": "auto",
    "deniedCIDRs": [],
    "allowedHostPorts": [],
    "mtu": 65520
  },
  "allowedBindSources": [],
  "workspaceRoots": [],
  "rootfsRoots": [],
  "allowNetlink": false,
  "allowRawSockets": false,
  "artifactBudgetBytes": 1073741824,
  "cache": {
    "keepBytes": 10000000000,
    "keepPercentOfDisk": 20,
    "importMaxEntries": 1000000
  },
  "maxSecretBytes": 512000,
  "defaultPids": 4096,
  "minFreeDiskBytes": 1073741824,
  "reports": {
    "maxFiles": 1000,
    "maxTotalBytes": 268435456,
    "maxFileBytes": 67108864,
    "maxCases": 100000
  },
  "secrets": {},
  "images": {
    "storeMaxBytes": 20000000000
  },
  "tmpfs": {
    "defaultSizeBytes": 268435456,
    "maxSizeBytes": 1073741824
  }
}

"""#
}
