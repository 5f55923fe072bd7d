extension Dockerfile {
    /// Parses Dockerfile text as BuildKit's `dockerfile:1` frontend does: parser
    /// directives, comments, continuations, JSON and shell forms, heredocs, stages.
    /// `file` names the file in errors (`Dockerfile:7: ...`). Nothing is expanded.
    public static func parse(_ text: String, file: String = "Dockerfile") throws(DockerfileError) -> Dockerfile {
        guard text.utf8.count <= DockerfileLimits.maxBytes else {
            throw DockerfileError(.tooLarge, "the Dockerfile is larger than \(DockerfileLimits.maxBytes) bytes", file: file)
        }
        var scanner = LineScanner(text: text)
        guard scanner.lineCount <= DockerfileLimits.maxLines else {
            throw DockerfileError(.tooLarge, "the Dockerfile has more than \(DockerfileLimits.maxLines) lines", file: file)
        }
        var globalArgs: [Instruction] = []
        var stages: [Stage] = []
        var count = 0
        var namedAt: [String: Int] = [:]
        while true {
            let raw: RawInstruction?
            do { raw = try scanner.next() } catch { throw error.located(file: file, line: 0, instruction: nil) }
            guard let raw else { break }
            count += 1
            if count > DockerfileLimits.maxInstructions {
                throw DockerfileError(.tooLarge, "the Dockerfile has more than \(DockerfileLimits.maxInstructions) instructions",
                                      file: file, line: raw.startLine)
            }
            let inst: Instruction
            do { inst = try InstructionParser.parse(raw, escape: scanner.directives.escape) } catch {
                throw error.located(file: file, line: raw.startLine, instruction: raw.keyword.uppercased())
            }
            if case .from(let from) = inst.command {
                if let name = from.name {
                    if let first = namedAt[name] {
                        throw DockerfileError(.stage, "duplicate stage name \"\(name)\" (first used on line \(first))",
                                              file: file, line: inst.line, instruction: "FROM")
                    }
                    namedAt[name] = inst.line
                }
                guard stages.count < DockerfileLimits.maxStages else {
                    throw DockerfileError(.tooLarge, "the Dockerfile has more than \(DockerfileLimits.maxStages) stages",
                                          file: file, line: inst.line, instruction: "FROM")
                }
                stages.append(Stage(index: stages.count, name: from.name, from: inst, instructions: []))
            } else if stages.isEmpty {
                guard case .arg = inst.command else {
                    throw DockerfileError(.stage, "\(inst.keyword) before the first FROM: only ARG may come before FROM",
                                          file: file, line: inst.line, instruction: inst.keyword)
                }
                globalArgs.append(inst)
            } else {
                stages[stages.count - 1].instructions.append(inst)
            }
        }
        if count == 0 {
            throw DockerfileError(.empty, "the Dockerfile has no instructions", file: file)
        }
        if stages.isEmpty {
            throw DockerfileError(.empty, "the Dockerfile has no FROM instruction", file: file,
                                  line: globalArgs.first?.line)
        }
        var warnings = scanner.warnings
        for stage in stages {
            for inst in stage.instructions where inst.keyword == "MAINTAINER" {
                warnings.append(DockerfileWarning(line: inst.line, message: "MAINTAINER is deprecated; use LABEL org.opencontainers.image.authors=..."))
            }
        }
        return Dockerfile(file: file, syntax: scanner.directives.syntax, check: scanner.directives.check,
                          escape: Character(scanner.directives.escape), globalArgs: globalArgs, stages: stages,
                          warnings: warnings)
    }

    /// Parses one instruction (an `ONBUILD` trigger, heredoc bodies after its line) so the
    /// executor can run triggers when a build starts from an image that has them. Refuses
    /// what BuildKit refuses as a trigger: `ONBUILD`, `FROM`, `MAINTAINER`. `line` is the
    /// line reported in errors (the child's `FROM`).
    public static func parseInstruction(_ text: String, file: String = "Dockerfile", line: Int = 1,
                                        escape: Character = "\\") throws(DockerfileError) -> Instruction {
        guard text.utf8.count <= DockerfileLimits.maxBytes else {
            throw DockerfileError(.tooLarge, "the instruction is larger than \(DockerfileLimits.maxBytes) bytes", file: file, line: line)
        }
        var scanner = LineScanner(text: text, escape: escape.unicodeScalars.first ?? "\\")
        let raw: RawInstruction?
        do { raw = try scanner.next() } catch { throw error.located(file: file, line: line, instruction: nil) }
        guard var raw else { throw DockerfileError(.empty, "the ONBUILD trigger is empty", file: file, line: line) }
        raw.startLine = line
        raw.endLine = line
        let keyword = raw.keyword.uppercased()
        switch keyword {
        case "ONBUILD": throw DockerfileError(.arguments, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", file: file, line: line, instruction: keyword)
        case "FROM", "MAINTAINER": throw DockerfileError(.arguments, "\(keyword) isn't allowed as an ONBUILD trigger", file: file, line: line, instruction: keyword)
        default: break
        }
        let inst: Instruction
        do { inst = try InstructionParser.parse(raw, escape: scanner.directives.escape) } catch {
            throw error.located(file: file, line: line, instruction: keyword)
        }
        if (try? scanner.next()) ?? nil != nil {
            throw DockerfileError(.arguments, "an ONBUILD trigger is one instruction", file: file, line: line, instruction: keyword)
        }
        return inst
    }
}
