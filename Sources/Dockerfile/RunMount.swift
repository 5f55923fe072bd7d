/// One `RUN --mount=` spec, BuildKit's keys and defaults
/// (docs.docker.com/reference/dockerfile/#run---mount).
public struct RunMount: Sendable, Equatable {
    /// `type=`: bind (the default), cache, tmpfs, secret, ssh.
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        case bind, cache, tmpfs, secret, ssh
    }

    /// `sharing=` of a cache mount.
    public enum Sharing: String, Sendable, Equatable, CaseIterable {
        case shared, `private`, locked
    }

    public var kind: Kind
    /// `target=`/`dst=`/`destination=`: where it appears in the container.
    public var target: String?
    /// `source=`/`src=`: a path in `from` (bind, cache) or the secret's id source.
    public var source: String?
    /// `from=`: a stage name or index, or an image (bind, cache).
    public var from: String?
    /// `ro`/`readonly`/`rw`/`readwrite`; defaults: bind, secret and ssh read-only, cache and
    /// tmpfs writable.
    public var readOnly: Bool
    /// `id=`: the cache id or the secret id.
    public var id: String?
    /// `sharing=` (cache only), default shared.
    public var sharing: Sharing?
    /// `required` (secret, ssh).
    public var required: Bool
    /// `size=` of a tmpfs in bytes.
    public var sizeLimit: Int64?
    /// `mode=` (octal), `uid=`, `gid=` (cache, secret, ssh).
    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    /// `env=`: a secret exposed as this environment variable instead of (or besides) a file.
    public var env: String?

    /// The secret id BuildKit uses: `id`, else the target's base name.
    public var secretID: String? {
        guard kind == .secret else { return nil }
        if let id, !id.isEmpty { return id }
        if let source, !source.isEmpty { return source }
        if let target, let last = target.split(separator: "/").last { return String(last) }
        return nil
    }

    /// The cache id BuildKit uses: `id`, else the target.
    public var cacheID: String? {
        guard kind == .cache else { return nil }
        if let id, !id.isEmpty { return id }
        return target
    }

    /// The target a secret mount gets when none is given: `/run/secrets/<id>`.
    public var effectiveTarget: String? {
        if let target, !target.isEmpty { return target }
        if kind == .secret, env == nil, let id = secretID { return "/run/secrets/" + id }
        if kind == .ssh { return "/run/buildkit/ssh_agent.\(0)" }
        return nil
    }

    init(kind: Kind = .bind) {
        self.kind = kind
        self.readOnly = true
        self.required = false
    }
}
