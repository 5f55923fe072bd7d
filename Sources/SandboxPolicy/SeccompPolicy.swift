/// Which seccomp filter a container gets.
public enum SeccompPolicy: Sendable, Equatable {
    /// No filter (still no_new_privs).
    case unconfined
    /// The project's own profile from `policies/seccomp-default.json`: no netlink and no
    /// raw or packet sockets. See `projectDefault(allowNetlink:allowRawSockets:)`.
    case projectDefault
    /// A Docker-format profile's JSON text.
    case profile(json: String)

    /// The project's profile with the optional socket families the agent policy may allow
    /// (`allowNetlink`, `allowRawSockets`): the rules of `DefaultProfile.netlinkRules` and
    /// `DefaultProfile.rawSocketRules` are appended to `policies/seccomp-default.json`.
    /// Both `false` gives `.projectDefault`.
    public static func projectDefault(allowNetlink: Bool, allowRawSockets: Bool) -> SeccompPolicy {
        switch (allowNetlink, allowRawSockets) {
        case (false, false): .projectDefault
        case (true, false): .profile(json: DefaultProfile.withNetlink)
        case (false, true): .profile(json: DefaultProfile.withRawSockets)
        case (true, true): .profile(json: DefaultProfile.withNetlinkAndRawSockets)
        }
    }

    /// A Docker-format profile read from `path` and checked now (so `agent exec --seccomp FILE`
    /// fails before any container starts). Errors name the file and the JSON path:
    /// `seccomp profile /etc/p.json: syscalls[3].action: unknown action ...`.
    public static func file(_ path: String) throws -> SeccompPolicy {
        let text: String
        switch readPolicyFile(path) {
        case .success(let data): text = String(decoding: data, as: UTF8.self)
        case .failure(let error): throw SeccompError(message: "seccomp profile \(path): cannot read the file (\(error))")
        }
        do {
            _ = try SeccompProfile(json: text)
        } catch let error as SeccompError {
            let detail = error.message.hasPrefix("seccomp profile: ") ? String(error.message.dropFirst("seccomp profile: ".count)) : error.message
            throw SeccompError(message: "seccomp profile \(path): \(detail)")
        }
        return .profile(json: text)
    }

    /// The profile text this policy compiles; `nil` for `.unconfined`.
    public var profileText: String? {
        switch self {
        case .unconfined: nil
        case .projectDefault: DefaultProfile.text
        case .profile(let json): json
        }
    }

    /// The BPF program (an array of `struct sock_filter`, 8 bytes each, native byte order)
    /// for this policy on the running architecture, given the capabilities the container
    /// keeps (Docker profiles include or exclude rules by capability). `nil` for `.unconfined`.
    /// Compiled with libseccomp once per (profile, architecture, capabilities) and cached.
    public func compile(capabilities: CapabilitySet) throws -> [UInt8]? {
        try program(capabilities: capabilities)?.bytes
    }

    /// As `compile(capabilities:)`, also keeping programs as `<sha256>.bpf` files in
    /// `cacheDirectory` (created 0700 if missing), so later agent processes skip libseccomp.
    /// A corrupt cache file is ignored and rewritten.
    public func compile(capabilities: CapabilitySet, cacheDirectory: String?) throws -> [UInt8]? {
        try program(capabilities: capabilities, cacheDirectory: cacheDirectory)?.bytes
    }

    /// The compiled program with what the compiler decided (architectures, skipped names),
    /// through `cache` (the process-wide one by default). `nil` for `.unconfined`.
    public func program(capabilities: CapabilitySet, cacheDirectory: String? = nil,
                        cache: SeccompCache = .shared) throws -> SeccompProgram? {
        guard let text = profileText else { return nil }
        return try cache.program(profileText: text, capabilities: capabilities, cacheDirectory: cacheDirectory)
    }
}

extension DefaultProfile {
    static let withNetlink = variant(rules: netlinkRules)
    static let withRawSockets = variant(rules: rawSocketRules)
    static let withNetlinkAndRawSockets = variant(rules: netlinkRules + rawSocketRules)

    private static func variant(rules: [SeccompProfile.Rule]) -> String {
        // The embedded profile is tested to parse, so a failure here is a build defect.
        guard var profile = try? SeccompProfile(json: text) else {
            fatalError("the embedded default seccomp profile does not parse")
        }
        profile.syscalls += rules
        return profile.jsonText
    }
}
