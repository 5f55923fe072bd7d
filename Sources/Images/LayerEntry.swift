import FoundationEssentials
import Glibc

/// One entry of a layer being written, collected from a source before anything is
/// written, so entries can be sorted and hardlinks resolved. Paths are bytes (a file
/// name need not be UTF-8), relative, without `./`, `/` at either end.
struct LayerEntry {
    enum Data {
        /// No content (folders, links, devices, whiteouts, hardlinks).
        case none
        /// The file at this path beneath the source folder's descriptor.
        case file([UInt8])
        /// `size` bytes at this offset of the tar source's spool file.
        case spool(Int64)
    }

    var path: [UInt8]
    /// Glibc.S_IFREG, Glibc.S_IFDIR, Glibc.S_IFLNK, Glibc.S_IFCHR, Glibc.S_IFBLK, Glibc.S_IFIFO.
    var type: UInt32
    var mode: UInt32
    var uid: Int64
    var gid: Int64
    var mtime: Int64
    var size: Int64 = 0
    var symlink: [UInt8]? = nil
    /// Set by `resolveHardlinks`: the path of the entry holding the content.
    var hardlink: [UInt8]? = nil
    var rdevMajor: UInt32 = 0
    var rdevMinor: UInt32 = 0
    /// Sorted by name.
    var xattrs: [(name: String, value: [UInt8])] = []
    var data: Data = .none
    /// Entries with the same key are hard links of one file.
    var linkKey: [UInt8]? = nil

    var name: String { String(decoding: path, as: UTF8.self) }

    static func xattrIsOverlay(_ n: String) -> Bool { n.hasPrefix("user.overlay.") || n.hasPrefix("trusted.overlay.") }
}

/// Normalisation shared by both sources: names checked, overlay whiteouts converted,
/// overlay xattrs dropped, times clamped, entries sorted, hardlinks resolved.
enum LayerEntries {
    /// A relative path of at most `maxBytes`, without `..`, NUL or an absolute start
    /// (`./` is dropped). Nil for the root itself.
    static func normalise(_ raw: [UInt8], maxBytes: Int, display: String) throws(ImageError) -> [UInt8]? {
        if raw.contains(0) { throw .layer(display, "its name contains NUL") }
        if raw.first == UInt8(ascii: "/") { throw .layer(display, "its name is absolute") }
        var parts: [ArraySlice<UInt8>] = []
        for p in raw.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if p.elementsEqual(".".utf8) { continue }
            if p.elementsEqual("..".utf8) { throw .layer(display, "its name leads out of the layer (..)") }
            parts.append(p)
        }
        if parts.isEmpty { return nil }
        let out = Array(parts.joined(separator: [UInt8(ascii: "/")]))
        if out.count > maxBytes { throw .layer(String(display.prefix(200)) + "...", "its name is longer than \(maxBytes) bytes") }
        return out
    }

    /// Whiteouts in OCI form, overlay xattrs dropped. `convert`: overlayfs upper-folder
    /// whiteouts (0:0 character devices, `*.overlay.whiteout` files, `*.overlay.opaque=y`
    /// folders) become `.wh.NAME` files and `.wh..wh..opq` entries.
    static func convertWhiteouts(_ entries: [LayerEntry], convert: Bool) -> [LayerEntry] {
        var out: [LayerEntry] = []
        out.reserveCapacity(entries.count)
        for var e in entries {
            let overlay = e.xattrs.filter { LayerEntry.xattrIsOverlay($0.name) }
            e.xattrs.removeAll { LayerEntry.xattrIsOverlay($0.name) }
            guard convert else { out.append(e); continue }
            let isDeviceWhiteout = e.type == UInt32(Glibc.S_IFCHR) && e.rdevMajor == 0 && e.rdevMinor == 0
            let isXattrWhiteout = e.type == UInt32(Glibc.S_IFREG) && overlay.contains { $0.name.hasSuffix(".overlay.whiteout") }
            if isDeviceWhiteout || isXattrWhiteout {
                var w = e
                w.path = whiteoutPath(e.path)
                w.type = UInt32(Glibc.S_IFREG); w.mode = 0; w.size = 0; w.data = .none; w.xattrs = []
                w.rdevMajor = 0; w.rdevMinor = 0; w.linkKey = nil
                out.append(w)
                continue
            }
            out.append(e)
            if e.type == UInt32(Glibc.S_IFDIR), overlay.contains(where: { $0.name.hasSuffix(".overlay.opaque") && $0.value == Array("y".utf8) }) {
                var o = e
                o.path = e.path + Array("/.wh..wh..opq".utf8)
                o.type = UInt32(Glibc.S_IFREG); o.mode = 0; o.size = 0; o.data = .none; o.xattrs = []
                out.append(o)
            }
        }
        return out
    }

    static func whiteoutPath(_ p: [UInt8]) -> [UInt8] {
        if let slash = p.lastIndex(of: UInt8(ascii: "/")) {
            return Array(p[...slash]) + Array(".wh.".utf8) + Array(p[(slash + 1)...])
        }
        return Array(".wh.".utf8) + p
    }

    /// Sorts bytewise by path (a folder precedes its contents: it is their prefix),
    /// refuses a path listed twice, clamps mtimes to `epoch`, and makes the first entry
    /// of each hardlink group (in sorted order) hold the content, the others link to it.
    static func finish(_ entries: inout [LayerEntry], epoch: Int64?) throws(ImageError) {
        entries.sort { $0.path.lexicographicallyPrecedes($1.path) }
        var holder: [[UInt8]: Int] = [:]
        for i in entries.indices {
            if i > 0 && entries[i].path == entries[i - 1].path {
                throw .layer(entries[i].name, "is listed twice")
            }
            if let epoch, entries[i].mtime > epoch { entries[i].mtime = epoch }
            guard let key = entries[i].linkKey else { continue }
            if let first = holder[key] {
                entries[i].hardlink = entries[first].path
                entries[i].size = 0
                entries[i].data = .none
            } else {
                // Every member of a group carries the content's reference; the first keeps it.
                holder[key] = i
            }
        }
    }
}
