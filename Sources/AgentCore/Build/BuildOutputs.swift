import AgentSupport
import FoundationEssentials
import Glibc
import Images

extension BuildExecutor {
    /// Commits the target stage (config with history, base layers reused by digest), tags
    /// it in the agent's image store and writes every output.
    func finish(_ s: StageResult) async throws(BuildError) -> BuildResult {
        var config = s.config
        config.created = request.sourceDateEpoch.map { ImageConfigDocument.timestamp(epochSeconds: $0) }
            ?? ImageConfigDocument.timestamp(epochSeconds: Int64(time(nil)))
        config.diffIDs = s.allDiffIDs
        var tags = request.tags
        for case .image(let name, _) in request.outputs where !tags.contains(name) { tags.append(name) }
        var normalised: [String] = []
        for t in tags {
            do { normalised.append(try ImageReference.parse(t).description) } catch {
                throw BuildError(.badInput, stage: "tag", "-t \(t): \(error)")
            }
        }
        let v = progress.start("exporting to image")
        let committed: CommittedImage
        do {
            committed = try store.commit(base: s.baseManifest, layers: s.layers, config: config, tags: normalised)
        } catch {
            progress.failed(v, "\(error)")
            throw BuildError(.agent, stage: "export", "cannot commit the image: \(error)")
        }
        progress.log(v, "manifest \(committed.manifest)")
        for t in normalised { progress.log(v, "naming to \(t)") }
        progress.done(v)
        var result = BuildResult(manifestDigest: committed.manifest.description, configDigest: committed.config.digest.description)
        result.tags = normalised
        for out in request.outputs {
            let ov = progress.start("exporting \(describe(out))")
            do {
                switch out {
                case .image: break
                case .oci(let dest):
                    try store.export(manifest: committed.manifest, to: .ociArchive(path: absolute(dest)),
                                     options: ExportOptions(names: normalised, overwrite: true, sourceDateEpoch: request.sourceDateEpoch))
                case .docker(let dest):
                    try store.export(manifest: committed.manifest, to: .dockerArchive(path: absolute(dest)),
                                     options: ExportOptions(names: normalised, overwrite: true, sourceDateEpoch: request.sourceDateEpoch))
                case .local(let dest):
                    let path = absolute(dest)
                    _ = mkdir(path, 0o755)
                    let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    guard fd >= 0 else { throw BuildError(.badInput, stage: "output", "type=local,dest=\(dest): cannot open the folder: \(String(cString: strerror(errno)))") }
                    defer { close(fd) }
                    for w in try store.exportRootFilesystem(manifest: committed.manifest, into: fd) { progress.log(ov, "warning: \(w)") }
                }
            } catch let e as BuildError {
                progress.failed(ov, e.message)
                throw e
            } catch {
                progress.failed(ov, "\(error)")
                throw BuildError(.agent, stage: "export", "\(describe(out)): \(error)")
            }
            progress.done(ov)
        }
        var pushes: [String] = request.push ? normalised : []
        for case .image(let name, true) in request.outputs {
            if let n = try? ImageReference.parse(name).description, !pushes.contains(n) { pushes.append(n) }
        }
        for ref in pushes {
            let pv = progress.start("pushing \(ref)")
            do {
                let r = try ImageReference.parse(ref)
                if let why = ImageGate.refusal(.registry(r), policy: policy.images) {
                    throw BuildError(.badInput, stage: "push", "push \(ref): \(why)")
                }
                let report = try store.push(manifest: committed.manifest, to: r)
                progress.log(pv, "\(report.present.count) blobs present, \(report.mounted.count) mounted, "
                             + "\(report.uploadedMonolithic.count + report.uploadedChunked.count) uploaded (\(report.bytesUploaded) bytes)")
                result.pushed.append(ref)
            } catch let e as BuildError {
                progress.failed(pv, e.message)
                throw e
            } catch {
                progress.failed(pv, "\(error)")
                throw BuildError(.agent, stage: "push", "push \(ref): \(error)")
            }
            progress.done(pv)
        }
        return result
    }

    func describe(_ o: BuildRequest.Output) -> String {
        switch o {
        case .image(let n, let p): return "type=image,name=\(n)" + (p ? ",push=true" : "")
        case .oci(let d): return "type=oci,dest=\(d)"
        case .docker(let d): return "type=docker,dest=\(d)"
        case .local(let d): return "type=local,dest=\(d)"
        }
    }

    func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}
