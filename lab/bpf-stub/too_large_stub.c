/*
 * Lab only: lets the real Falco's modern eBPF probe load on a kernel whose BPF verifier refuses some of its programs
 * as too large ("BPF program is too large. Processed 1000001 insn"), as the lab machines' 6.18 kernel does with
 * recvmmsg_x and sendmmsg_x of Falco 0.44.1. Falco loads its whole probe or nothing, so one refused program leaves a
 * host with no detection at all.
 *
 * Preloaded into Falco (LD_PRELOAD, set by lab/falco-probe-stub.yml), it wraps libc's syscall(), through which
 * libbpf makes every bpf() call. A BPF_PROG_LOAD the kernel refuses with E2BIG is tried once more with an empty
 * program of the same type in place of the refused one ("return 0"), and the program's name goes to stderr and to
 * syslog (the packaged unit sends Falco's stderr to /dev/null; syslog reaches the unit's journal). Falco then runs with every other program as built: only the events of the stubbed programs are missing
 * (for recvmmsg_x and sendmmsg_x, the exit events of recvmmsg and sendmmsg). Every other call passes through
 * unchanged, so on a kernel that accepts the whole probe this changes nothing.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <linux/bpf.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <syslog.h>

long syscall(long number, ...) {
  static long (*libc_syscall)(long, ...);
  va_list ap;
  va_start(ap, number);
  long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
  long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
  va_end(ap);
  if (!libc_syscall) libc_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");

  long result = libc_syscall(number, a1, a2, a3, a4, a5, a6);
  if (result >= 0 || errno != E2BIG || number != SYS_bpf || a1 != BPF_PROG_LOAD) return result;

  static const struct bpf_insn return_zero[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0},
      {.code = BPF_JMP | BPF_EXIT},
  };
  union bpf_attr *attr = (union bpf_attr *)a2;
  static const char message[] =
      "fleetwatch lab: the kernel refused BPF program '%.*s' as too large; loading an empty one in its place";
  fprintf(stderr, message, BPF_OBJ_NAME_LEN, attr->prog_name);
  fputc('\n', stderr);
  syslog(LOG_WARNING, message, BPF_OBJ_NAME_LEN, attr->prog_name);
  attr->insns = (unsigned long)return_zero;
  attr->insn_cnt = sizeof(return_zero) / sizeof(return_zero[0]);
  /* The refused program's BTF function and line records describe its instructions, not the empty program's. */
  attr->func_info = 0;
  attr->func_info_cnt = 0;
  attr->func_info_rec_size = 0;
  attr->line_info = 0;
  attr->line_info_cnt = 0;
  attr->line_info_rec_size = 0;
  return libc_syscall(number, a1, a2, a3, a4, a5, a6);
}
