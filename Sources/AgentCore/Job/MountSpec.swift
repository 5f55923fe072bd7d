/// A step mount, BuildKit style. Parsed from a `--mount` string
/// (`type=cache,target=/root/.cache,sharing=locked`) or the same as a JSON object.
public enum MountSpec: Sendable, Equatable {
    public enum Sharing: String, Sendable, Equatable, CaseIterable { case shared, `private`, locked }

    public struct Cache: Sendable, Equatable {
        public var target: String
        /// Defaults to the target path.
        public var id: String
        public var sharing: Sharing = .shared
        public var readOnly: Bool = false
        public var mode: UInt32 = 0o755
        public var uid: UInt32 = 0
        public var gid: UInt32 = 0
        public init(target: String, id: String? = nil) {
            self.target = target
            self.id = id ?? target
        }
    }

    public struct Secret: Sendable, Equatable {
        public var id: String
        /// File target (default `/run/secrets/<id>`); nil when `env` is set.
        public var target: String?
        /// Set this environment variable to the value instead of mounting a file.
        public var env: String?
        public var required: Bool = false
        public var mode: UInt32 = 0o400
        public var uid: UInt32 = 0
        public var gid: UInt32 = 0
        public init(id: String, target: String?, env: String?) {
            self.id = id
            self.target = target
            self.env = env
        }
    }

    case cache(Cache)
    case secret(Secret)
    /// A persistent named volume.
    case volume(source: String, target: String, readOnly: Bool)
    /// A host path; read-only unless `readWrite`.
    case bind(source: String, target: String, readWrite: Bool)
    case tmpfs(target: String, size: UInt64?, mode: UInt32)

    /// The container path this mount appears at (secret env mounts have none).
    public var target: String? {
        switch self {
        case .cache(let c): return c.target
        case .secret(let s): return s.env == nil ? (s.target ?? "/run/secrets/\(s.id)") : nil
        case .volume(_, let t, _), .bind(_, let t, _), .tmpfs(let t, _, _): return t
        }
    }
}
