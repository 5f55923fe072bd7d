import AgentSupport
import Dockerfile
import FoundationEssentials
import Images

extension BuildExecutor {
    /// The instructions that change only the image config: each moves the cache key on
    /// and adds an `empty_layer` history entry, as BuildKit does.
    func applyMetadata(_ inst: Instruction, into s: inout StageResult, globals: Variables) throws(BuildError) {
        let vars = s.expansionVariables
        var canonical: [String] = []
        func x(_ w: String) throws(BuildError) -> String { try expand(w, vars, inst) }
        switch inst.command {
        case .env(let pairs):
            for p in pairs {
                let value = try x(p.value)
                s.config.setEnvironment(try x(p.key), value)
                canonical.append(p.key + "=" + value)
            }
        case .arg(let decls):
            for d in decls {
                let value: String
                if let given = request.buildArgs[d.name] { value = given }
                else if let def = d.defaultValue { value = try x(def) }
                else if let global = globals[d.name] { value = global }
                // Declared without a value anywhere: unset, as BuildKit leaves it
                // (`${NAME-word}` gives `word`, RUN does not see it), not empty.
                else { canonical.append(d.name); continue }
                s.args[d.name] = value
                canonical.append(d.name + "=" + value)
            }
        case .workdir(let w):
            let dir = s.absolute(try x(w))
            s.config.workingDir = normalize(dir)
            canonical.append(s.config.workingDir!)
        case .user(let u):
            s.config.user = try x(u)
            canonical.append(s.config.user!)
        case .label(let pairs):
            for p in pairs {
                let k = try x(p.key), v = try x(p.value)
                s.config.labels[k] = v
                canonical.append(k + "=" + v)
            }
        case .expose(let ports):
            for p in ports {
                var port = try x(p)
                if !port.contains("/") { port += "/tcp" }
                if !s.config.exposedPorts.contains(port) { s.config.exposedPorts.append(port) }
                canonical.append(port)
            }
            s.config.exposedPorts.sort()
        case .volume(let vols):
            for v in vols {
                let path = try x(v)
                if !s.config.volumes.contains(path) { s.config.volumes.append(path) }
                canonical.append(path)
            }
            s.config.volumes.sort()
        case .cmd(let c):
            s.config.cmd = commandLine(arguments: c.arguments, prependsShell: c.prependsShell, shell: s.shell)
            canonical = s.config.cmd!
        case .entrypoint(let c):
            s.config.entrypoint = commandLine(arguments: c.arguments, prependsShell: c.prependsShell, shell: s.shell)
            // An ENTRYPOINT resets the base image's CMD, as in Docker.
            s.config.cmd = nil
            canonical = s.config.entrypoint!
        case .shell(let sh):
            s.shell = sh
            s.config.shell = sh
            canonical = sh
        case .stopSignal(let sig):
            s.config.stopSignal = try x(sig)
            canonical.append(s.config.stopSignal!)
        case .healthcheck(let h):
            if h.test == ["NONE"] {
                s.config.healthcheck = Images.Healthcheck(test: ["NONE"])
            } else {
                s.config.healthcheck = Images.Healthcheck(
                    test: h.test, interval: h.interval == 0 ? nil : h.interval, timeout: h.timeout == 0 ? nil : h.timeout,
                    startPeriod: h.startPeriod == 0 ? nil : h.startPeriod, startInterval: h.startInterval == 0 ? nil : h.startInterval,
                    retries: h.retries == 0 ? nil : Int64(h.retries))
            }
            canonical = h.test
        case .onbuild(let text):
            s.config.onBuild = (s.config.onBuild ?? []) + [text]
            canonical.append(text)
        case .maintainer(let m):
            s.config.author = m
            canonical.append(m)
        case .from, .run, .copy, .add:
            preconditionFailure("not a metadata instruction")
        }
        var key = BuildCacheKey(parent: s.key, kind: inst.keyword)
        key.add("values", canonical)
        // ARG values are not in the image, but the history records the instruction as
        // written (BuildKit records `ARG NAME=value`; values a build arg gave could be
        // private, so only the name is kept).
        let createdBy: String
        if case .arg(let decls) = inst.command {
            createdBy = "ARG " + decls.map(\.name).joined(separator: " ")
        } else {
            createdBy = redact(inst.original)
        }
        try record(nil, createdBy: createdBy, key: key.finish(), into: &s)
    }

    /// CMD/ENTRYPOINT/RUN argv: exec form as is, shell form behind the stage's SHELL.
    func commandLine(arguments: [String], prependsShell: Bool, shell: [String]) -> [String] {
        prependsShell ? shell + [arguments.joined(separator: " ")] : arguments
    }

    /// `/a/./b/../c/` -> `/a/c`.
    func normalize(_ path: String) -> String {
        var out: [Substring] = []
        for c in path.split(separator: "/") where c != "." {
            if c == ".." { if !out.isEmpty { out.removeLast() } } else { out.append(c) }
        }
        return "/" + out.joined(separator: "/")
    }
}
