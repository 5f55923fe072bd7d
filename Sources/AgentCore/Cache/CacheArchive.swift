import CAgentSys
import CArchive
import AgentSupport
import FoundationEssentials
import Glibc
import Synchronization

/// Moving caches between machines: `agent cache export` / `agent cache import` with
/// libarchive, so ephemeral agents can start warm.
public enum CacheArchiveFormat: String, Sendable, CaseIterable {
    case tar, gzip, zstd

    /// By file name: `.tar`, `.tar.gz`/`.tgz`, `.tar.zst`/`.tzst`.
    public init?(fileName: String) {
        let n = fileName.lowercased()
        if n.hasSuffix(".tar") { self = .tar }
        else if n.hasSuffix(".tar.gz") || n.hasSuffix(".tgz") { self = .gzip }
        else if n.hasSuffix(".tar.zst") || n.hasSuffix(".tzst") { self = .zstd }
        else { return nil }
    }
}

/// An archive could not be written or read (corrupt, unsafe entry); names the file.
public struct CacheArchiveError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var message: String
    public init(file: String, message: String) {
        self.file = file
        self.message = message
    }
    public var description: String { "\(file): \(message)" }
}

extension CacheStore {
    /// Test hook: called with "before-swap"/"after-swap" and the cache's data path around the
    /// import's exchange, so a test can look at what a crash at that point would leave.
    static let importHook = Mutex<(@Sendable (_ stage: String, _ data: String) -> Void)?>(nil)

    /// Writes instance 0 of the cache to `output` (a tar, compressed by the file's extension),
    /// through a temporary sibling renamed at the end, so no half-written archive is left.
    /// Returns the number of entries written.
    @discardableResult
    public func export(scope: String, id: String, to output: String) async throws -> Int {
        guard let format = CacheArchiveFormat(fileName: output) else {
            throw CacheInputError("\(output): unknown archive type (use .tar, .tar.gz or .tar.zst)")
        }
        guard CacheKey.isValidScope(scope) else { throw CacheInputError("invalid cache scope \"\(scope)\"") }
        let data = Self.instancePath(entry: entryPath(scope: scope, id: id), instance: 0)
        guard FileManager.default.fileExists(atPath: data) else {
            throw CacheInputError("no cache \"\(id)\" in scope \(scope)")
        }
        // A shared hold: a prune or import cannot remove the cache while it is read.
        let use = try LockFile(path: lockPath(scope: scope, id: id) + "/use.lock")
        defer { use.close() }
        try await use.lock(exclusive: false)
        let tmp = output + ".partial-\(getpid())"
        do {
            let count = try ArchiveWriter.write(directory: data, to: tmp, format: format)
            guard rename(tmp, output) == 0 else { throw StateError(path: output, errno: errno, message: "cannot write") }
            return count
        } catch {
            unlink(tmp)
            throw error
        }
    }

    /// Replaces the cache's contents with the archive's. The archive is extracted into a fresh
    /// folder beside the cache and fully checked first (a libarchive error means corrupt;
    /// absolute paths, `..` and links leading out are refused; set-id bits are dropped), then
    /// swapped in with one `renameat2(RENAME_EXCHANGE)`, so a bad archive, one past `limits`
    /// or a crash at any point leaves either the old or the new cache complete. Refused
    /// (`InUseError`) while a step holds the cache. Returns the number of entries.
    @discardableResult
    public func importArchive(scope: String, id: String, from archive: String,
                              limits: ArchiveLimits = ArchiveLimits()) async throws -> Int {
        guard CacheKey.isValidScope(scope) else { throw CacheInputError("invalid cache scope \"\(scope)\"") }
        guard !id.isEmpty else { throw CacheInputError("cache id must not be empty") }
        guard FileManager.default.isReadableFile(atPath: archive) else {
            throw CacheInputError("\(archive): cannot read the archive")
        }
        try state.create()
        let locks = lockPath(scope: scope, id: id)
        try StateDirectory.makeDirectory(locks, mode: 0o700)
        let use = try LockFile(path: locks + "/use.lock")
        defer { use.close() }
        guard use.tryLock(exclusive: true) else { throw InUseError(what: "cache \"\(id)\" (scope \(scope))") }

        let entry = entryPath(scope: scope, id: id)
        try StateDirectory.makeDirectory(entry, mode: 0o700)
        guard let realEntry = MountPlanner.realPath(entry) else { throw StateError(path: entry, message: "cannot resolve") }
        // What a crashed import left (a staging folder, or the old contents after the swap).
        for name in (try? FileManager.default.contentsOfDirectory(atPath: realEntry)) ?? []
        where name.hasPrefix("import-") || name.hasPrefix("replaced-") {
            try? await FileTree.removeTreeFully(realEntry + "/" + name)
        }
        let staging = realEntry + "/import-" + UUID().uuidString
        guard mkdir(staging, 0o700) == 0 else { throw StateError(path: staging, errno: errno, message: "cannot create") }
        let count: Int
        do {
            count = try ArchiveReader.extract(archive: archive, into: staging, limits: limits)
            chmod(staging, 0o755)
        } catch {
            try? await FileTree.removeTreeFully(staging)
            throw error
        }
        let data = Self.instancePath(entry: realEntry, instance: 0)
        // One atomic exchange when there is old data (afterwards `staging` names the old
        // contents); a plain rename that refuses to replace anything when there is none.
        var st = stat()
        let hadData = lstat(data, &st) == 0
        Self.importHook.withLock { $0 }?("before-swap", data)
        let swapped = hadData ? agent_renameat2(AT_FDCWD, staging, AT_FDCWD, data, AGENT_RENAME_EXCHANGE)
                              : agent_renameat2(AT_FDCWD, staging, AT_FDCWD, data, AGENT_RENAME_NOREPLACE)
        guard swapped == 0 else {
            let e = errno
            try? await FileTree.removeTreeFully(staging)
            throw StateError(path: data, errno: e, message: "cannot swap in the imported cache")
        }
        Self.importHook.withLock { $0 }?("after-swap", data)
        // Other instances held the old contents; they would shadow the import for private users.
        for n in Self.instances(entry: realEntry) where n > 0 {
            let p = Self.instancePath(entry: realEntry, instance: n)
            let moved = realEntry + "/replaced-" + UUID().uuidString
            if rename(p, moved) == 0 { try? await FileTree.removeTreeFully(moved) }
        }
        if hadData { try? await FileTree.removeTreeFully(staging) }
        let now = Date()
        var meta = AtomicJSON.read(CacheMetadata.self, from: realEntry + "/meta.json")
            ?? CacheMetadata(scope: scope, id: id, created: now, lastUsed: now, mode: 0o755, uid: 0, gid: 0)
        meta.lastUsed = now
        meta.sizeBytes = nil
        meta.measured = nil
        try AtomicJSON.write(meta, to: realEntry + "/meta.json")
        return count
    }
}

/// Writes a directory tree as a pax tar with libarchive (symlinks stored, never followed).
enum ArchiveWriter {
    static func write(directory: String, to output: String, format: CacheArchiveFormat) throws -> Int {
        func fail(_ a: OpaquePointer?, _ what: String) -> CacheArchiveError {
            let msg = a.flatMap { archive_error_string($0) }.map { String(cString: $0) } ?? "unknown error"
            return CacheArchiveError(file: output, message: "\(what): \(msg)")
        }
        guard let out = archive_write_new() else { throw CacheArchiveError(file: output, message: "out of memory") }
        defer { archive_write_free(out) }
        archive_write_set_format_pax_restricted(out)
        switch format {
        case .tar: break
        case .gzip: guard archive_write_add_filter_gzip(out) == ARCHIVE_OK else { throw fail(out, "gzip") }
        case .zstd: guard archive_write_add_filter_zstd(out) == ARCHIVE_OK else { throw fail(out, "zstd") }
        }
        guard archive_write_open_filename(out, output) == ARCHIVE_OK else { throw fail(out, "cannot create") }

        guard let disk = archive_read_disk_new() else { throw CacheArchiveError(file: output, message: "out of memory") }
        defer { archive_read_free(disk) }
        archive_read_disk_set_symlink_physical(disk)
        archive_read_disk_set_standard_lookup(disk)
        guard archive_read_disk_open(disk, directory) == ARCHIVE_OK else { throw fail(disk, "cannot read \(directory)") }

        var count = 0
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        while true {
            guard let entry = archive_entry_new() else { throw CacheArchiveError(file: output, message: "out of memory") }
            defer { archive_entry_free(entry) }
            let r = archive_read_next_header2(disk, entry)
            if r == ARCHIVE_EOF { break }
            guard r >= ARCHIVE_WARN else { throw fail(disk, "cannot read the cache") }
            archive_read_disk_descend(disk)
            let full = String(cString: archive_entry_pathname(entry))
            guard full.hasPrefix(prefix) else { continue } // the root itself
            archive_entry_copy_pathname(entry, String(full.dropFirst(prefix.count)))
            guard archive_write_header(out, entry) >= ARCHIVE_WARN else { throw fail(out, "cannot write \(full)") }
            if archive_entry_filetype(entry) == S_IFREG && archive_entry_size(entry) > 0 {
                while true {
                    let n = archive_read_data(disk, &buffer, buffer.count)
                    if n == 0 { break }
                    guard n > 0 else { throw fail(disk, "cannot read \(full)") }
                    guard archive_write_data(out, buffer, n) == n else { throw fail(out, "cannot write \(full)") }
                }
            }
            count += 1
        }
        guard archive_write_close(out) == ARCHIVE_OK else { throw fail(out, "cannot finish") }
        return count
    }
}

/// Bounds of one `cache import`: bytes of file data (the CLI passes the cache budget) and
/// entries (policy `cache.importMaxEntries`).
public struct ArchiveLimits: Sendable, Equatable {
    public var maxBytes: UInt64
    public var maxEntries: UInt64
    public init(maxBytes: UInt64 = .max, maxEntries: UInt64 = 1_000_000) {
        self.maxBytes = maxBytes
        self.maxEntries = maxEntries
    }
}

/// Extracts a tar into a folder, refusing anything that could land outside it.
enum ArchiveReader {
    static func extract(archive path: String, into root: String, limits: ArchiveLimits = ArchiveLimits()) throws -> Int {
        func fail(_ a: OpaquePointer?, _ what: String) -> CacheArchiveError {
            let msg = a.flatMap { archive_error_string($0) }.map { String(cString: $0) } ?? "unknown error"
            return CacheArchiveError(file: path, message: "\(what): \(msg)")
        }
        guard let input = archive_read_new(), let disk = archive_write_disk_new() else {
            throw CacheArchiveError(file: path, message: "out of memory")
        }
        defer { archive_read_free(input); archive_write_free(disk) }
        // Only the built-in gzip and zstd decoders (none for a `.tar`): `filter_all` would
        // also accept lrzip, lzop, grzip..., which libarchive runs as external programs.
        // ARCHIVE_WARN from a support call means "through an external program": refused.
        if CacheArchiveFormat(fileName: path) != .tar {
            guard archive_read_support_filter_gzip(input) == ARCHIVE_OK,
                  archive_read_support_filter_zstd(input) == ARCHIVE_OK else {
                throw CacheArchiveError(file: path, message: "this libarchive has no built-in gzip/zstd decoder")
            }
        }
        archive_read_support_format_tar(input)
        // Paths are rewritten to absolute ones under `root` (checked below), so libarchive's
        // own absolute-path check cannot be used; its symlink and `..` checks still apply.
        // PERM keeps modes (set-id bits are cleared per entry below).
        let flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_SYMLINKS
            | ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_UNLINK
        archive_write_disk_set_options(disk, flags)
        var bytes: UInt64 = 0
        guard archive_read_open_filename(input, path, 64 * 1024) == ARCHIVE_OK else {
            throw fail(input, "not a readable archive")
        }
        var count = 0
        while true {
            var entryPointer: OpaquePointer?
            let r = archive_read_next_header(input, &entryPointer)
            if r == ARCHIVE_EOF { break }
            guard r == ARCHIVE_OK, let entry = entryPointer else { throw fail(input, "corrupt archive") }
            let name = String(cString: archive_entry_pathname(entry))
            guard let rel = safeRelative(name) else {
                throw CacheArchiveError(file: path, message: "unsafe entry \"\(name)\" (absolute or leading out with ..)")
            }
            if rel.isEmpty { try skipData(input, path); continue } // the archive's root folder
            guard UInt64(count) < limits.maxEntries else {
                throw CacheArchiveError(file: path, message:
                    "more than \(limits.maxEntries) entries (agent policy cache.importMaxEntries); the cache is unchanged")
            }
            // A set-id file in a cache would run with the agent's or a mapped uid's rights.
            archive_entry_set_perm(entry, archive_entry_perm(entry) & ~mode_t(0o6000))
            switch archive_entry_filetype(entry) {
            case S_IFREG, S_IFDIR, S_IFLNK: break
            default:
                throw CacheArchiveError(file: path, message: "entry \"\(name)\" is not a file, folder or symlink")
            }
            if let link = archive_entry_hardlink(entry) {
                let target = String(cString: link)
                guard let relLink = safeRelative(target), !relLink.isEmpty else {
                    throw CacheArchiveError(file: path, message: "hard link \"\(name)\" points out of the cache (\(target))")
                }
                archive_entry_copy_hardlink(entry, root + "/" + relLink)
            }
            archive_entry_copy_pathname(entry, root + "/" + rel)
            guard archive_write_header(disk, entry) == ARCHIVE_OK else { throw fail(disk, "cannot extract \"\(name)\"") }
            var buf: UnsafeRawPointer?
            var size = 0
            var offset: Int64 = 0
            while true {
                let d = archive_read_data_block(input, &buf, &size, &offset)
                if d == ARCHIVE_EOF { break }
                guard d == ARCHIVE_OK else { throw fail(input, "corrupt data for \"\(name)\"") }
                // Checked before writing: a tiny archive may expand to fill the disk.
                bytes += UInt64(size)
                guard bytes <= limits.maxBytes else {
                    throw CacheArchiveError(file: path, message:
                        "expands to more than \(limits.maxBytes) bytes (the cache budget, agent policy cache.keepBytes/keepPercentOfDisk); the cache is unchanged")
                }
                guard archive_write_data_block(disk, buf, size, offset) == ARCHIVE_OK else {
                    throw fail(disk, "cannot write \"\(name)\"")
                }
            }
            guard archive_write_finish_entry(disk) == ARCHIVE_OK else { throw fail(disk, "cannot finish \"\(name)\"") }
            count += 1
        }
        guard archive_read_close(input) == ARCHIVE_OK else { throw fail(input, "corrupt archive") }
        guard archive_write_close(disk) == ARCHIVE_OK else { throw fail(disk, "cannot finish extraction") }
        return count
    }

    private static func skipData(_ input: OpaquePointer, _ path: String) throws {
        guard archive_read_data_skip(input) == ARCHIVE_OK else {
            throw CacheArchiveError(file: path, message: "corrupt archive")
        }
    }

    /// `./a/b/` → `a/b`; nil for an absolute path or one with a `..` component.
    static func safeRelative(_ name: String) -> String? {
        if name.hasPrefix("/") { return nil }
        var parts: [Substring] = []
        for part in name.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { return nil }
            parts.append(part)
        }
        return parts.joined(separator: "/")
    }
}
