import CSeccomp
import AgentSupport
import FoundationEssentials
import Glibc

/// Facts about the running machine that decide which rules of a profile apply:
/// the native seccomp architecture, the kernel version, and the libseccomp version.
/// They are part of every cache key, because the same profile compiles differently on
/// another architecture, kernel (`minKernel`) or libseccomp (syscall tables).
public struct SeccompHost: Sendable, Hashable {
    /// libseccomp's architecture name, e.g. `x86_64`.
    public var architecture: String
    /// The kernel release (`uname -r`), e.g. `6.1.0-18-amd64`.
    public var kernelRelease: String
    /// `major.minor.micro` of the libseccomp in use.
    public var libseccompVersion: String

    public var kernelVersion: SeccompProfile.KernelVersion? { SeccompProfile.KernelVersion(kernelRelease) }

    public init(architecture: String, kernelRelease: String, libseccompVersion: String) {
        self.architecture = architecture
        self.kernelRelease = kernelRelease
        self.libseccompVersion = libseccompVersion
    }

    /// The machine this process runs on.
    public static let current: SeccompHost = {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        let native = seccomp_arch_native()
        let arch = SeccompArchitecture.libseccompNames.first { seccomp_arch_resolve_name($0) == native } ?? "unknown"
        var version = "unknown"
        if let v = seccomp_version() {
            version = "\(v.pointee.major).\(v.pointee.minor).\(v.pointee.micro)"
        }
        return SeccompHost(architecture: arch, kernelRelease: release, libseccompVersion: version)
    }()
}

/// Spellings of architectures: Docker's `SCMP_ARCH_X86_64` tokens, libseccomp's names
/// (`x86_64`) and Go's `GOARCH` (`amd64`, which Docker's `includes.arches` use).
enum SeccompArchitecture {
    /// Every architecture name libseccomp 2.5 understands.
    static let libseccompNames = [
        "x86_64", "x86", "x32", "aarch64", "arm", "mips", "mipsel", "mips64", "mipsel64",
        "mips64n32", "mipsel64n32", "ppc", "ppc64", "ppc64le", "s390", "s390x",
        "parisc", "parisc64", "riscv64", "loongarch64",
    ]

    /// libseccomp's name for a Docker token: `SCMP_ARCH_X86_64` -> `x86_64`.
    static func libseccompName(token: String) -> String {
        String(token.dropFirst("SCMP_ARCH_".count)).lowercased()
    }

    /// The names under which `includes.arches`/`excludes.arches` can mean the running
    /// architecture: Go's GOARCH (what Docker compares with) and libseccomp's name.
    static func filterNames(native: String) -> Set<String> {
        let goNames: [String: String] = [
            "x86_64": "amd64", "x86": "386", "aarch64": "arm64", "mipsel": "mipsle",
            "mipsel64": "mips64le", "mips64n32": "mips64p32", "mipsel64n32": "mips64p32le",
            "loongarch64": "loong64",
        ]
        return [native, goNames[native] ?? native]
    }

    /// The libseccomp names of the architectures a profile covers on `native`: the native
    /// one plus its archMap sub-architectures, or the `architectures` list.
    static func covered(by profile: SeccompProfile, native: String) -> [String] {
        var names = [native]
        if !profile.archMap.isEmpty {
            for group in profile.archMap where libseccompName(token: group.architecture) == native {
                names += group.subArchitectures.map(libseccompName(token:))
            }
        } else {
            names += profile.architectures.map(libseccompName(token:))
        }
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }
}
