import CCap
import Testing
@testable import SandboxPolicy

/// Capability names (the agent's table, checked against libcap here).
@Suite struct CapabilityTests {
    static let dockerNames = ["CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
                              "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"]

    @Test func dockerDefaultMaskIsDockersFourteen() throws {
        #expect(CapabilitySet.dockerDefault.mask.nonzeroBitCount == 14)
        #expect(try CapabilitySet(names: Self.dockerNames) == .dockerDefault)
        #expect(try CapabilitySet(names: Self.dockerNames.map { "CAP_" + $0 }).mask == 0x00000000a80425fb)
    }

    @Test func namesRoundTrip() throws {
        for number in 0...CapabilitySet.lastCapability {
            let set = CapabilitySet(mask: 1 << UInt64(number))
            let names = set.names
            #expect(names.count == 1)
            #expect(names[0].hasPrefix("CAP_"), "capability \(number) is called \(names[0])")
            #expect(try CapabilitySet(names: names) == set)
        }
        #expect(Set(CapabilitySet.dockerDefault.names) == Set(Self.dockerNames.map { "CAP_" + $0 }))
    }

    @Test func namesAreCaseInsensitiveWithOrWithoutPrefix() throws {
        let chown = try CapabilitySet(names: ["CAP_CHOWN"])
        #expect(try CapabilitySet(names: ["chown"]) == chown)
        #expect(try CapabilitySet(names: ["Cap_Chown"]) == chown)
        #expect(try CapabilitySet(names: ["cap_chown"]) == chown)
        #expect(chown.names == ["CAP_CHOWN"])
        #expect(chown.mask == 1)
        #expect(try CapabilitySet(names: ["sys_admin"]).contains(number: 21))
    }

    @Test func allIsEveryKernelCapability() throws {
        let all = try CapabilitySet(names: ["ALL"])
        #expect(all == CapabilitySet.all)
        #expect(all.mask.nonzeroBitCount == CapabilitySet.lastCapability + 1)
        #expect(try CapabilitySet(names: ["all"]) == all)
        #expect(all.contains(.dockerDefault))
    }

    @Test func unknownNamesAreNamed() {
        #expect(throws: CapabilityError.unknownName("CAP_FLY")) { try CapabilitySet(names: ["CHOWN", "CAP_FLY"]) }
        #expect(throws: CapabilityError.unknownName("")) { try CapabilitySet(names: [""]) }
        #expect(throws: CapabilityError.unknownName("7")) { try CapabilitySet(names: ["7"]) }
        #expect("\(CapabilityError.unknownName("CAP_FLY"))" == "unknown capability CAP_FLY")
    }

    @Test func dropAllAddOneNarrowsThePolicy() throws {
        let policy = CapabilitySet.dockerDefault
        #expect(try CapabilitySet.narrowing(policy, drop: [], add: []) == policy)
        #expect(try CapabilitySet.narrowing(policy, drop: ["ALL"], add: []) == .empty)
        #expect(try CapabilitySet.narrowing(policy, drop: ["ALL"], add: ["NET_BIND_SERVICE"]).names == ["CAP_NET_BIND_SERVICE"])
        #expect(try CapabilitySet.narrowing(policy, drop: ["NET_RAW", "mknod"], add: []) ==
            policy.subtracting(try CapabilitySet(names: ["CAP_NET_RAW", "CAP_MKNOD"])))
        #expect(try CapabilitySet.narrowing(policy, drop: ["ALL"], add: ["ALL"]) == policy)
    }

    @Test func addingOutsideThePolicyIsAnError() {
        #expect(throws: CapabilityError.notAllowed("CAP_SYS_ADMIN")) {
            try CapabilitySet.narrowing(.dockerDefault, drop: ["ALL"], add: ["sys_admin"])
        }
        #expect(throws: CapabilityError.unknownName("CAP_NOPE")) {
            try CapabilitySet.narrowing(.dockerDefault, drop: [], add: ["CAP_NOPE"])
        }
        #expect(throws: CapabilityError.unknownName("CAP_NOPE")) {
            try CapabilitySet.narrowing(.dockerDefault, drop: ["CAP_NOPE"], add: [])
        }
    }

    @Test func profileCapabilityNamesThisHostDoesNotKnowAreNotHeld() {
        #expect(!CapabilitySet.all.contains(name: "CAP_FROM_THE_FUTURE"))
        #expect(CapabilitySet.dockerDefault.contains(name: "CAP_KILL"))
    }

    /// The agent no longer links libcap (start-up cost); its table must say what libcap says.
    @Test func tableMatchesLibcap() throws {
        for number in 0..<64 {
            let raw = try #require(cap_to_name(cap_value_t(number)))
            defer { cap_free(raw) }
            let libcap = String(cString: raw)
            if number < CapabilityNames.byNumber.count {
                #expect(CapabilityNames.name(of: number) == libcap, "capability \(number)")
                var value: cap_value_t = -1
                #expect(cap_from_name(libcap, &value) == 0 && Int(value) == number, "\(libcap)")
            } else {
                // Past the table libcap has no name either (it prints the number, as we do).
                #expect(CapabilityNames.name(of: number) == nil)
                #expect(libcap == String(number), "libcap knows capability \(number) as \(libcap): extend CapabilityNames")
            }
        }
        #expect(CapabilitySet.name(of: 63) == "63")
    }

    /// The fallback for a missing /proc/sys/kernel/cap_last_cap probes as libcap does.
    @Test func probedLastCapabilityMatchesKernelAndLibcap() {
        #expect(CapabilitySet.probedLastCapability() == CapabilitySet.lastCapability)
        #expect(CapabilitySet.probedLastCapability() == Int(cap_max_bits()) - 1)
    }
}
