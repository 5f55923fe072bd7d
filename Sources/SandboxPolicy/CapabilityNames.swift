/// Linux capability names by number, spelled as <linux/capability.h> and libcap print them
/// (lower case, `cap_` prefix). A table rather than libcap's `cap_to_name`/`cap_from_name`:
/// linking libcap made every agent process map it and run its constructor (a probe of the
/// bounding set) at start-up, for a few dozen fixed strings. The kernel, not this table,
/// decides which capabilities exist (`CapabilitySet.lastCapability`); a test checks the
/// table against the installed libcap, name for name.
enum CapabilityNames {
    /// Index = capability number, 0 (`cap_chown`) through 40 (`cap_checkpoint_restore`,
    /// Linux 5.9), the last one any kernel defines as of Linux 6.18.
    static let byNumber: [String] = [
        "cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid",
        "cap_kill", "cap_setgid", "cap_setuid", "cap_setpcap", "cap_linux_immutable",
        "cap_net_bind_service", "cap_net_broadcast", "cap_net_admin", "cap_net_raw",
        "cap_ipc_lock", "cap_ipc_owner", "cap_sys_module", "cap_sys_rawio", "cap_sys_chroot",
        "cap_sys_ptrace", "cap_sys_pacct", "cap_sys_admin", "cap_sys_boot", "cap_sys_nice",
        "cap_sys_resource", "cap_sys_time", "cap_sys_tty_config", "cap_mknod", "cap_lease",
        "cap_audit_write", "cap_audit_control", "cap_setfcap", "cap_mac_override",
        "cap_mac_admin", "cap_syslog", "cap_wake_alarm", "cap_block_suspend", "cap_audit_read",
        "cap_perfmon", "cap_bpf", "cap_checkpoint_restore",
    ]

    /// The number of `name`, which must be lower case with the `cap_` prefix; nil if the
    /// table has no such name.
    static func number(of name: String) -> Int? {
        byNumber.firstIndex(of: name)
    }

    /// The lower-case name of capability `number`, or nil for a number past the table
    /// (a capability newer than this table, which libcap prints as its number).
    static func name(of number: Int) -> String? {
        byNumber.indices.contains(number) ? byNumber[number] : nil
    }
}
