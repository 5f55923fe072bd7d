import AgentSupport

/// Job-level `artifacts[]`: named sets of workspace globs collected after the steps.
extension JobDocumentParser {
    func artifacts(_ n: JobJSONNode) throws -> [ArtifactRule] {
        var seen: [String: Int] = [:]
        var out: [ArtifactRule] = []
        for (i, item) in try n.array("an array of artifact rules").enumerated() {
            let obj = try item.object("an artifact rule like {\"name\": \"dist\", \"paths\": [\"dist/**\"]}")
            try obj.checkKeys(allowed: ["name", "paths", "exclude", "when", "required"], required: ["name", "paths"])
            let nameNode = obj["name"]!
            let name = try nameNode.string()
            guard JobParser.isValidName(name) else {
                throw nameNode.error("\(jsonQuoted(name)) is not a valid artifact name: \(JobParser.nameRule)")
            }
            if let first = seen[name] {
                throw nameNode.error("duplicate artifact name \(jsonQuoted(name)) (also artifacts[\(first)])")
            }
            seen[name] = i
            let pathsNode = obj["paths"]!
            var rule = ArtifactRule(name: name, paths: try patterns(pathsNode))
            guard !rule.paths.isEmpty else { throw pathsNode.error("must contain at least one glob") }
            if let v = obj["exclude"] { rule.exclude = try patterns(v) }
            if let v = obj["when"] { rule.when = StepSpec.When(rawValue: try enumValue(v, StepSpec.When.allCases.map(\.rawValue)))! }
            if let v = obj["required"] { rule.required = try v.bool() }
            out.append(rule)
        }
        return out
    }

    /// Workspace-relative globs: no absolute paths, no `..` components, so that collection
    /// can never reach outside the workspace by the pattern alone.
    private func patterns(_ n: JobJSONNode) throws -> [String] {
        try n.array("an array of globs relative to the workspace").map { item in
            let s = try item.nonEmptyString("a glob relative to the workspace, like \"dist/**\"")
            guard !s.hasPrefix("/") else {
                throw item.error("\(jsonQuoted(s)) is absolute: artifact globs are relative to the workspace")
            }
            guard !s.split(separator: "/").contains("..") else {
                throw item.error("\(jsonQuoted(s)) leaves the workspace: \"..\" components are not allowed")
            }
            guard !s.utf8.contains(0) else { throw item.error("must not contain a NUL byte") }
            return s
        }
    }
}
