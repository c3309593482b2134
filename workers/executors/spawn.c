/*
 * cronfleet-spawn: starts one job's program the way the worker's child setup would
 * (workers/executors/process.py, ChildSetup), without Python between fork and exec.
 *
 *   cronfleet-spawn [-c CGROUP_DIR] [-m MEMORY_MB] [-t CPU_SECONDS]
 *                   [-u UID -g GID -G GID,GID,...] [-d DIR] -- PROGRAM [ARG...]
 *
 * The worker starts it with subprocess's vfork path (no preexec_fn), as the session and
 * process group leader of the run; the environment passes through to the program. In order:
 *
 *  1. containment (-c): the program is started with clone3(CLONE_INTO_CGROUP), born in the
 *     run's cgroup, so no cgroup migration (slow: it waits for an RCU grace period) is
 *     needed. This launcher stays, outside the cgroup, as the program's parent: it ignores
 *     the signals sent to the whole group (the program gets them) and ends as the program
 *     did: the same exit code, or killed by the same signal. Without -c it simply execs.
 *  2. limits: RLIMIT_AS (-m, in MiB) and RLIMIT_CPU (-t: soft, hard one second later);
 *  3. identity: setgroups (-G, may be empty), setgid (-g), setuid (-u), checked;
 *  4. the working directory (-d), entered only as that identity, so that a path the job
 *     controls (a symlink) cannot lead root's chdir;
 *  5. execvp of PROGRAM.
 *
 * A failure before the program runs prints one line on stderr, "cronfleet-spawn: ...",
 * and exits with
 *   125  the setup failed (bad arguments, cgroup, limits, identity, working directory);
 *   126  the program was found but could not be executed;
 *   127  the program was not found.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum { SETUP_FAILED = 125, CANNOT_EXECUTE = 126, NOT_FOUND = 127, MAX_GROUPS = 256 };

/* The signals the worker sends to the run's whole group: for the program, not for us. */
static const int GROUP_SIGNALS[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
                                    SIGALRM, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU};

struct setup {
    const char *cgroup, *memory_mb, *cpu_seconds, *uid, *gid, *groups, *dir;
    char **argv;
};

static void fail(int code, const char *what, ...) {
    va_list args;
    va_start(args, what);
    fputs("cronfleet-spawn: ", stderr);
    vfprintf(stderr, what, args);
    fputc('\n', stderr);
    va_end(args);
    _exit(code);
}

static unsigned long long number(const char *text, const char *name) {
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || *text == '\0' || *end != '\0' || *text == '-')
        fail(SETUP_FAILED, "%s must be a number, got '%s' (a worker bug: report it)", name, text);
    return value;
}

static void apply_limits(const struct setup *s) {
    if (s->memory_mb) {
        rlim_t bytes = number(s->memory_mb, "-m") * 1024 * 1024;
        struct rlimit limit = {bytes, bytes};
        if (setrlimit(RLIMIT_AS, &limit))
            fail(SETUP_FAILED, "cannot set the memory limit (RLIMIT_AS %s MiB): %s; "
                 "choose a max_memory_mb this worker may set", s->memory_mb, strerror(errno));
    }
    if (s->cpu_seconds) {
        rlim_t seconds = number(s->cpu_seconds, "-t");
        struct rlimit limit = {seconds, seconds + 1};
        if (setrlimit(RLIMIT_CPU, &limit))
            fail(SETUP_FAILED, "cannot set the CPU limit (RLIMIT_CPU %s s): %s; "
                 "choose a max_cpu_seconds this worker may set", s->cpu_seconds, strerror(errno));
    }
}

static size_t parse_groups(const char *text, gid_t *groups) {
    size_t count = 0;
    char copy[4096], *saved, *word;
    if (strlen(text) >= sizeof copy)
        fail(SETUP_FAILED, "too many supplementary groups (-G): at most %d", MAX_GROUPS);
    strcpy(copy, text);
    for (word = strtok_r(copy, ",", &saved); word; word = strtok_r(NULL, ",", &saved)) {
        if (count == MAX_GROUPS)
            fail(SETUP_FAILED, "too many supplementary groups (-G): at most %d", MAX_GROUPS);
        groups[count++] = (gid_t)number(word, "-G");
    }
    return count;
}

static void drop_identity(const struct setup *s) {
    if (!s->uid)
        return;
    if (!s->gid || !s->groups)
        fail(SETUP_FAILED, "-u needs -g and -G (a worker bug: report it)");
    uid_t uid = (uid_t)number(s->uid, "-u");
    gid_t gid = (gid_t)number(s->gid, "-g"), groups[MAX_GROUPS];
    size_t count = parse_groups(s->groups, groups);
    if (setgroups(count, groups) || setgid(gid) || setuid(uid))
        fail(SETUP_FAILED, "cannot switch to uid %u gid %u: %s; the worker must run as root "
             "to run job code as SCHEDULER_RUN_AS", uid, gid, strerror(errno));
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    if (getresuid(&ruid, &euid, &suid) || getresgid(&rgid, &egid, &sgid) || ruid != uid ||
        euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid)
        fail(SETUP_FAILED, "the switch to uid %u gid %u did not take", uid, gid);
}

/* What runs in the program's own process: steps 2 to 5. */
static void become_program(const struct setup *s) {
    apply_limits(s);
    drop_identity(s);
    if (s->dir && chdir(s->dir))
        fail(SETUP_FAILED, "cannot enter the working directory %s as uid %u: %s; give that "
             "user access to it or choose another working_dir", s->dir, getuid(),
             strerror(errno));
    execvp(s->argv[0], s->argv);
    int code = errno == ENOENT ? NOT_FOUND : CANNOT_EXECUTE;
    fail(code, "cannot execute %s: %s", s->argv[0], strerror(errno));
}

/* The program's pid, born in the cgroup at ``dir``; 0 in the program itself. */
static pid_t clone_into(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        fail(SETUP_FAILED, "cannot open the run's cgroup %s: %s", dir, strerror(errno));
    struct clone_args args = {.flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD,
                              .cgroup = (uint64_t)fd};
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
    if (pid < 0 && (errno == ENOSYS || errno == EPERM)) {
        /* No clone3 (an old kernel, or a seccomp filter): fork, then join by a write. */
        pid = fork();
        if (pid == 0) {
            int procs = openat(fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
            if (procs < 0 || write(procs, "0", 1) != 1)
                fail(SETUP_FAILED, "cannot join the run's cgroup %s: %s", dir, strerror(errno));
        }
    }
    if (pid < 0)
        fail(SETUP_FAILED, "cannot start a process in the cgroup %s: %s", dir, strerror(errno));
    if (pid > 0)
        close(fd);
    return pid;
}

/* End as the program ended: its exit code, or its fatal signal (without a core file). */
static void mirror(int status) {
    if (WIFEXITED(status))
        _exit(WEXITSTATUS(status));
    int sig = WTERMSIG(status);
    struct rlimit no_core = {0, 0};
    sigset_t only;
    setrlimit(RLIMIT_CORE, &no_core);
    signal(sig, SIG_DFL);
    sigemptyset(&only);
    sigaddset(&only, sig);
    sigprocmask(SIG_UNBLOCK, &only, NULL);
    raise(sig);
    _exit(128 + sig);
}

static void run_contained(const struct setup *s) {
    sigset_t group, before;
    sigemptyset(&group);
    for (size_t i = 0; i < sizeof GROUP_SIGNALS / sizeof *GROUP_SIGNALS; i++)
        sigaddset(&group, GROUP_SIGNALS[i]);
    sigprocmask(SIG_BLOCK, &group, &before);
    pid_t pid = clone_into(s->cgroup);
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &before, NULL);
        become_program(s);
    }
    for (size_t i = 0; i < sizeof GROUP_SIGNALS / sizeof *GROUP_SIGNALS; i++)
        signal(GROUP_SIGNALS[i], SIG_IGN);
    sigprocmask(SIG_SETMASK, &before, NULL);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            fail(SETUP_FAILED, "lost the program's process: %s", strerror(errno));
    mirror(status);
}

int main(int argc, char **argv) {
    struct setup s = {0};
    int option;
    while ((option = getopt(argc, argv, "+c:m:t:u:g:G:d:")) != -1) {
        const char **field = option == 'c' ? &s.cgroup : option == 'm' ? &s.memory_mb
                           : option == 't' ? &s.cpu_seconds : option == 'u' ? &s.uid
                           : option == 'g' ? &s.gid : option == 'G' ? &s.groups
                           : option == 'd' ? &s.dir : NULL;
        if (!field)
            fail(SETUP_FAILED, "usage: cronfleet-spawn [-c CGROUP_DIR] [-m MEMORY_MB] "
                 "[-t CPU_SECONDS] [-u UID -g GID -G GIDS] [-d DIR] -- PROGRAM [ARG...]");
        *field = optarg;
    }
    if (optind >= argc)
        fail(SETUP_FAILED, "no program to run");
    s.argv = argv + optind;
    if (s.cgroup)
        run_contained(&s);
    become_program(&s);
    return SETUP_FAILED;
}
