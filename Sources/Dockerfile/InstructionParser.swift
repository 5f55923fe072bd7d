/// Turns raw instructions into typed ones, with BuildKit's argument rules and messages
/// (its instructions/parse.go).
enum InstructionParser {
    /// Every instruction keyword, upper case.
    static let keywords = ["ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
                           "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"]

    static func parse(_ raw: RawInstruction, escape: Unicode.Scalar) throws(DockerfileError) -> Instruction {
        let keyword = raw.keyword.uppercased()
        let command = try typed(raw, keyword: keyword, escape: escape)
        return Instruction(keyword: keyword, line: raw.startLine, endLine: raw.endLine, original: raw.original,
                           flags: raw.flags, command: command)
    }

    static func flags(_ raw: RawInstruction, _ keyword: String, _ declared: [(String, BuilderFlags.Kind)]) throws(DockerfileError) -> BuilderFlags {
        var f = BuilderFlags(keyword: keyword, declared)
        try f.parse(raw.flags)
        return f
    }

    static func typed(_ raw: RawInstruction, keyword: String, escape: Unicode.Scalar) throws(DockerfileError) -> Command {
        let rest = raw.rest
        switch keyword {
        case "FROM":
            let f = try flags(raw, keyword, [("platform", .string)])
            let args = WordParsers.splitBlanks(rest)
            var name: String?
            if args.count == 3 && args[1].lowercased() == "as" {
                let n = args[2].lowercased()
                guard isValidStageName(n) else {
                    throw DockerfileError(.arguments, "invalid name for build stage: \"\(args[2])\", name can't start with a number or contain symbols")
                }
                name = n
            } else if args.count != 1 {
                throw DockerfileError(.arguments, "FROM requires either one or three arguments")
            }
            return .from(FromCommand(image: args[0], name: name, platform: f.strings["platform"]))
        case "RUN":
            let f = try flags(raw, keyword, [("mount", .list), ("network", .string), ("security", .string)])
            let cmd = try commandLine(raw, keyword)
            var network: NetworkMode?
            if let n = f.strings["network"] {
                guard let m = NetworkMode(rawValue: n) else {
                    throw DockerfileError(.flag, "unsupported network mode \"\(n)\" (RUN --network takes default, none or host)")
                }
                network = m
            }
            var security: SecurityMode?
            if let s = f.strings["security"] {
                guard let m = SecurityMode(rawValue: s) else {
                    throw DockerfileError(.flag, "unsupported security mode \"\(s)\" (RUN --security takes sandbox or insecure)")
                }
                security = m
            }
            let specs = f.lists["mount"] ?? []
            var mounts: [RunMount] = []
            for spec in specs {
                mounts.append(try RunMount.parse(spec, deferVariables: true) { (v: String) throws(DockerfileError) -> String in v })
            }
            return .run(RunCommand(command: cmd, mounts: mounts, network: network, security: security, mountSpecs: specs))
        case "COPY", "ADD":
            let isAdd = keyword == "ADD"
            let decl: [(String, BuilderFlags.Kind)] = isAdd
                ? [("chown", .string), ("chmod", .string), ("link", .bool), ("keep-git-dir", .bool),
                   ("checksum", .string), ("unpack", .bool), ("exclude", .list)]
                : [("chown", .string), ("from", .string), ("chmod", .string), ("link", .bool),
                   ("exclude", .list), ("parents", .bool)]
            let f = try flags(raw, keyword, decl)
            let args = try WordParsers.parseJSONArray(rest) ?? WordParsers.splitBlanks(rest)
            guard args.count >= 2 else {
                throw DockerfileError(.arguments, "\(keyword) requires at least two arguments, but only one was provided. Destination could not be determined")
            }
            let dest = args[args.count - 1]
            if HeredocMarker.parse(dest) != nil {
                throw DockerfileError(.heredoc, "\(keyword) cannot accept a heredoc as a destination")
            }
            var byName: [String: Heredoc] = [:]
            for h in raw.heredocs where byName[h.name] == nil { byName[h.name] = h }
            var sources: [String] = []
            var inline: [InlineSource] = []
            for src in args.dropLast() {
                if let marker = HeredocMarker.parse(src) {
                    var data = byName[marker.name]?.content ?? ""
                    if marker.stripsTabs { data = Heredoc.stripLeadingTabs(data) }
                    inline.append(InlineSource(path: marker.name, data: data, expands: marker.expands))
                } else {
                    sources.append(src)
                }
            }
            let c = CopyCommand(isAdd: isAdd, sources: sources, inlineSources: inline, destination: dest,
                                from: f.strings["from"], chown: f.strings["chown"], chmod: f.strings["chmod"],
                                link: f.bools["link"] ?? false, parents: f.bools["parents"] ?? false,
                                excludes: f.lists["exclude"] ?? [], keepGitDir: f.bools["keep-git-dir"],
                                checksum: f.strings["checksum"], unpack: f.bools["unpack"])
            return isAdd ? .add(c) : .copy(c)
        case "ENV", "LABEL":
            _ = try flags(raw, keyword, [])
            let pairs = try nameValues(rest, keyword, escape: escape)
            return keyword == "ENV" ? .env(pairs) : .label(pairs)
        case "ARG":
            _ = try flags(raw, keyword, [])
            let words = WordParsers.parseWords(rest, escape: escape)
            guard !words.isEmpty else { throw DockerfileError(.arguments, "ARG requires at least one argument") }
            var decls: [ArgDeclaration] = []
            for w in words {
                if let eq = w.firstIndex(of: "=") {
                    let k = String(w[..<eq])
                    guard !k.isEmpty else { throw DockerfileError(.arguments, "ARG names can not be blank") }
                    decls.append(ArgDeclaration(name: k, defaultValue: String(w[w.index(after: eq)...])))
                } else {
                    decls.append(ArgDeclaration(name: w, defaultValue: nil))
                }
            }
            return .arg(decls)
        case "WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER":
            _ = try flags(raw, keyword, [])
            guard !rest.isEmpty else {
                throw DockerfileError(.arguments, "\(keyword) requires exactly one argument")
            }
            switch keyword {
            case "WORKDIR": return .workdir(rest)
            case "USER": return .user(rest)
            case "STOPSIGNAL": return .stopSignal(rest)
            default: return .maintainer(rest)
            }
        case "EXPOSE":
            _ = try flags(raw, keyword, [])
            let ports = WordParsers.splitBlanks(rest)
            guard !ports.isEmpty else { throw DockerfileError(.arguments, "EXPOSE requires at least one argument") }
            return .expose(ports.sorted())
        case "VOLUME":
            _ = try flags(raw, keyword, [])
            let args = try WordParsers.parseJSONArray(rest) ?? WordParsers.splitBlanks(rest)
            guard !args.isEmpty else { throw DockerfileError(.arguments, "VOLUME requires at least one argument") }
            var out: [String] = []
            for v in args {
                let t = v.trimmingBlanks()
                guard !t.isEmpty else { throw DockerfileError(.arguments, "VOLUME specified can not be an empty string") }
                out.append(t)
            }
            return .volume(out)
        case "CMD":
            _ = try flags(raw, keyword, [])
            return .cmd(try commandLine(raw, keyword))
        case "ENTRYPOINT":
            _ = try flags(raw, keyword, [])
            return .entrypoint(try commandLine(raw, keyword))
        case "SHELL":
            _ = try flags(raw, keyword, [])
            guard !rest.isEmpty else { throw DockerfileError(.arguments, "SHELL requires at least one argument") }
            guard let args = try WordParsers.parseJSONArray(rest) else {
                throw DockerfileError(.arguments, "SHELL requires the arguments to be in JSON form, such as SHELL [\"/bin/sh\", \"-c\"]; got: \(rest)")
            }
            guard !args.isEmpty else { throw DockerfileError(.arguments, "SHELL requires at least one argument") }
            return .shell(args)
        case "HEALTHCHECK":
            return .healthcheck(try healthcheck(raw))
        case "ONBUILD":
            _ = try flags(raw, keyword, [])
            guard !rest.isEmpty else { throw DockerfileError(.arguments, "ONBUILD requires at least one argument") }
            let trigger = rest.split(maxSplits: 1, whereSeparator: { $0 == " " || $0 == "\t" })[0].uppercased()
            switch trigger {
            case "ONBUILD": throw DockerfileError(.arguments, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
            case "FROM", "MAINTAINER": throw DockerfileError(.arguments, "\(trigger) isn't allowed as an ONBUILD trigger")
            default: break
            }
            // The trigger is kept as text but checked now, so a bad trigger is this
            // Dockerfile's error and not the later build's.
            var sub = raw
            let inner = LineScanner.split(rest, startLine: raw.startLine, escape: escape)
            sub.keyword = inner.keyword
            sub.flags = inner.flags
            sub.rest = inner.rest
            _ = try typed(sub, keyword: inner.keyword.uppercased(), escape: escape)
            var text = stripKeyword(raw.original)
            for h in raw.heredocs { text += "\n" + h.content + h.name }
            return .onbuild(text)
        default:
            var msg = "unknown instruction \"\(raw.keyword)\""
            if let s = Suggest.closest(raw.keyword.uppercased(), among: keywords) { msg += " (did you mean \"\(s)\"?)" }
            throw DockerfileError(.unknownInstruction, msg)
        }
    }

    /// `original` without its leading `ONBUILD` and the blanks after it.
    static func stripKeyword(_ original: String) -> String {
        let t = original.trimmingLeadingBlanks()
        let rest = t.dropFirst("ONBUILD".count)
        return String(rest.trimmingLeadingBlanks())
    }

    static func isValidStageName(_ n: String) -> Bool {
        let s = Array(n.unicodeScalars)
        guard let first = s.first, ("a"..."z").contains(first) else { return false }
        return s.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" || $0 == "." }
    }

    /// RUN, CMD, ENTRYPOINT: exec form when the arguments are a JSON array of strings,
    /// else the whole rest as one shell-form string.
    static func commandLine(_ raw: RawInstruction, _ keyword: String) throws(DockerfileError) -> CommandLine {
        if raw.rest.isEmpty {
            if keyword == "RUN" { throw DockerfileError(.arguments, "RUN requires at least one argument") }
            return CommandLine(arguments: [], prependsShell: true)
        }
        if let args = try WordParsers.parseJSONArray(raw.rest) {
            return CommandLine(arguments: args, prependsShell: false)
        }
        return CommandLine(arguments: [raw.rest], prependsShell: true, heredocs: raw.heredocs)
    }

    /// ENV and LABEL: `k=v ...`, or ENV's legacy `k v` (the rest of the line is the value).
    static func nameValues(_ rest: String, _ keyword: String, escape: Unicode.Scalar) throws(DockerfileError) -> [KeyValue] {
        let words = WordParsers.parseWords(rest, escape: escape)
        guard let first = words.first else {
            throw DockerfileError(.arguments, "\(keyword) requires at least one argument")
        }
        if !first.contains("=") {
            let parts = splitOnce(rest)
            guard let value = parts.1, !value.isEmpty else {
                throw DockerfileError(.arguments, "\(keyword) must have two arguments")
            }
            return [KeyValue(key: parts.0, value: value, legacyForm: true)]
        }
        var out: [KeyValue] = []
        for w in words {
            guard let eq = w.firstIndex(of: "=") else {
                throw DockerfileError(.arguments, "Syntax error - can't find = in \"\(w)\". Must be of the form: name=value")
            }
            let k = String(w[..<eq])
            guard !k.isEmpty else { throw DockerfileError(.arguments, "\(keyword) names can not be blank") }
            out.append(KeyValue(key: k, value: String(w[w.index(after: eq)...])))
        }
        return out
    }

    /// The first blank-separated word and the rest after the blanks.
    static func splitOnce(_ s: String) -> (String, String?) {
        let sc = Array(s.unicodeScalars)
        var i = 0
        while i < sc.count, !WordParsers.isSplitBlank(sc[i]) { i += 1 }
        let head = String(String.UnicodeScalarView(sc[..<i]))
        guard i < sc.count else { return (head, nil) }
        while i < sc.count, WordParsers.isSplitBlank(sc[i]) { i += 1 }
        return (head, String(String.UnicodeScalarView(sc[i...])))
    }

    static func healthcheck(_ raw: RawInstruction) throws(DockerfileError) -> Healthcheck {
        let (typeWord, remainder) = splitOnce(raw.rest)
        guard !typeWord.isEmpty else { throw DockerfileError(.arguments, "HEALTHCHECK requires at least one argument") }
        let type = typeWord.uppercased()
        if type == "NONE" {
            guard (remainder ?? "").isEmpty else { throw DockerfileError(.arguments, "HEALTHCHECK NONE takes no arguments") }
            _ = try flags(raw, "HEALTHCHECK", [])
            return Healthcheck(test: ["NONE"], interval: 0, timeout: 0, startPeriod: 0, startInterval: 0, retries: 0)
        }
        let f = try flags(raw, "HEALTHCHECK", [("interval", .string), ("timeout", .string), ("start-period", .string),
                                                ("start-interval", .string), ("retries", .string)])
        guard type == "CMD" else {
            throw DockerfileError(.arguments, "Unknown type \"\(typeWord)\" in HEALTHCHECK (try CMD)")
        }
        let rest = remainder ?? ""
        var test: [String]
        if let args = try WordParsers.parseJSONArray(rest) {
            test = ["CMD"] + args
            if args.isEmpty { throw DockerfileError(.arguments, "Missing command after HEALTHCHECK CMD") }
        } else {
            guard !rest.isEmpty else { throw DockerfileError(.arguments, "Missing command after HEALTHCHECK CMD") }
            test = ["CMD-SHELL", rest]
        }
        func duration(_ name: String) throws(DockerfileError) -> Int64 {
            guard let s = f.strings[name], !s.isEmpty else { return 0 }
            guard let d = GoDuration.parse(s) else {
                throw DockerfileError(.flag, "time: invalid duration \"\(s)\" for HEALTHCHECK --\(name)")
            }
            if d != 0 && d < 1_000_000 {
                throw DockerfileError(.flag, "Interval \"\(name)\" cannot be less than 1ms")
            }
            return d
        }
        var retries = 0
        if let r = f.strings["retries"], !r.isEmpty {
            guard let n = Int32(r) else { throw DockerfileError(.flag, "invalid HEALTHCHECK --retries value \"\(r)\"") }
            guard n >= 0 else { throw DockerfileError(.flag, "--retries cannot be negative (\(n))") }
            retries = Int(n)
        }
        return Healthcheck(test: test, interval: try duration("interval"), timeout: try duration("timeout"),
                           startPeriod: try duration("start-period"), startInterval: try duration("start-interval"),
                           retries: retries)
    }
}

/// Go's time.ParseDuration: `1h30m`, `1.5s`, `300ms`, `10us`, `5ns`, in nanoseconds.
enum GoDuration {
    static func parse(_ s: String) -> Int64? {
        var t = Substring(s)
        var negative = false
        if t.first == "-" || t.first == "+" { negative = t.first == "-"; t = t.dropFirst() }
        if t == "0" { return 0 }
        guard !t.isEmpty else { return nil }
        let units: [(String, Double)] = [("ns", 1), ("us", 1e3), ("µs", 1e3), ("μs", 1e3), ("ms", 1e6),
                                         ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        var total = 0.0
        while !t.isEmpty {
            let num = t.prefix { $0.isNumber || $0 == "." }
            guard !num.isEmpty, let v = Double(num) else { return nil }
            t = t.dropFirst(num.count)
            let unitText = t.prefix { !($0.isNumber || $0 == ".") }
            guard let unit = units.first(where: { $0.0 == unitText }) else { return nil }
            t = t.dropFirst(unitText.count)
            total += v * unit.1
        }
        guard total < 9.2e18 else { return nil }
        return Int64(negative ? -total : total)
    }
}
