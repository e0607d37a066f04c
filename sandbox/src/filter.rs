//! The seccomp filter of every run: the system calls that would let code leave or widen its box
//! (namespaces, mounts, tracing, kernel interfaces) fail with `EPERM`; everything else is allowed.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// System calls denied outright.
const DENIED: &[i64] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_setns,
    libc::SYS_unshare,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_personality,
    libc::SYS_open_by_handle_at,
    libc::SYS_fsopen,
    libc::SYS_fsmount,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
];

/// Every namespace flag of clone(2).
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

/// The filter as the bytes of a `struct sock_filter` array, which `bwrap --seccomp FD` reads.
pub(crate) fn program_bytes() -> Result<Vec<u8>, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&call| (call, Vec::new())).collect();
    // clone with any namespace flag in its first argument is refused (one rule per flag: a call
    // matching any rule is refused); plain forks and threads pass.
    for bit in 0..u64::BITS {
        let flag = 1u64 << bit;
        if NAMESPACE_FLAGS & flag == 0 {
            continue;
        }
        let rule = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(flag),
            flag,
        )
        .and_then(|c| SeccompRule::new(vec![c]))
        .map_err(|e| e.to_string())?;
        rules.entry(libc::SYS_clone).or_default().push(rule);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        ARCH,
    )
    .map_err(|e| e.to_string())?;
    to_bytes(filter)
}

/// The second filter: clone3 passes its flags in memory, where a filter cannot look, so it fails
/// with `ENOSYS` — the one error on which the C library (and Rust's std, and Go's runtime) fall
/// back to clone, whose flags the first filter checks. (Refused with `EPERM`, as it once was,
/// glibc's `pthread_create` fails outright and no run could start a thread: ruff, pytest's
/// thread-using tests.) A filter of its own because a filter has one action for every match.
pub(crate) fn clone3_program_bytes() -> Result<Vec<u8>, String> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = [(libc::SYS_clone3, Vec::new())].into();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        ARCH,
    )
    .map_err(|e| e.to_string())?;
    to_bytes(filter)
}

/// A filter as the bytes of a `struct sock_filter` array, which `bwrap --add-seccomp-fd FD` reads.
fn to_bytes(filter: SeccompFilter) -> Result<Vec<u8>, String> {
    let program: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for instruction in &program {
        bytes.extend_from_slice(&instruction.code.to_ne_bytes());
        bytes.push(instruction.jt);
        bytes.push(instruction.jf);
        bytes.extend_from_slice(&instruction.k.to_ne_bytes());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_to_whole_bpf_instructions() {
        let bytes = program_bytes().expect("a filter");
        assert!(!bytes.is_empty());
        assert_eq!(bytes.len() % 8, 0);
        let bytes = clone3_program_bytes().expect("a filter");
        assert!(!bytes.is_empty());
        assert_eq!(bytes.len() % 8, 0);
    }

    #[test]
    fn every_namespace_flag_is_covered() {
        assert_eq!(NAMESPACE_FLAGS.count_ones(), 7);
    }
}
