extension ArtifactRule {
    /// Checks the rule when a job is parsed, so bad patterns are an invalid job (exit 2)
    /// rather than a failure after the build. `jsonPath` is the rule's path in the job,
    /// e.g. `artifacts[0]`; errors name the exact key, e.g. `artifacts[0].paths[1]`.
    public func validate(jsonPath: String) throws(JobValidationError) {
        if let problem = ArtifactCollector.nameProblem(name) {
            throw JobValidationError(path: jsonPath + ".name", message: "invalid artifact name \"\(name)\": \(problem)")
        }
        if paths.isEmpty {
            throw JobValidationError(path: jsonPath + ".paths", message: "needs at least one pattern")
        }
        for (key, list) in [("paths", paths), ("exclude", exclude)] {
            for (i, pattern) in list.enumerated() {
                do {
                    _ = try GlobPattern(pattern)
                } catch {
                    throw JobValidationError(path: "\(jsonPath).\(key)[\(i)]", message: error.description)
                }
            }
        }
    }
}
