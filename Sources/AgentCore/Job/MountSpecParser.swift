extension MountSpec {
    /// Parses a BuildKit `--mount` string as written in a Dockerfile
    /// (`type=cache,target=/root/.cache/pip,sharing=locked`). `path` is the JSON path for errors.
    /// STUB: implemented with the cache/mount work.
    public static func parse(buildKit text: String, path: String) throws -> MountSpec {
        throw JobValidationError(path: path, message: "mounts are not implemented yet")
    }

    /// Parses the JSON-object form of a mount (same keys as the string form).
    /// STUB: implemented with the cache/mount work.
    public static func parse(object: [String: Any], path: String) throws -> MountSpec {
        throw JobValidationError(path: path, message: "mounts are not implemented yet")
    }
}
