// SPDX-License-Identifier: GPL-2.0
/*
 * upalloc statistics: per-CPU event counters (global and per process),
 * exact live and peak page counts, commit accounting against the module
 * limits, per-process records, and the files under /proc/upalloc/.
 *
 * /proc/upalloc/stats, one "name value" line each, in the order of the
 * team contract. Counters never reset. Pages are physical pages:
 *   pages_live = pages_allocated - pages_freed, pages held by the module (a
 *   page shared by fork relatives counts once; a page no table holds any
 *   more stays until nothing else, a pipe or a pin, holds it either:
 *   upalloc_orphan.c); pages_peak its maximum.
 *   pages_committed = sum of all regions' breaks in pages.
 *   faults = faults_read + faults_write: ->fault calls that mapped a page or
 *   raised SIGBUS (POPULATE maps through them too, in forked regions only;
 *   elsewhere it maps without faults); faults_mkwrite counts read-only PTEs
 *   made writable (only forked regions map pages read-only);
 *   fault_latency_log2ns_K histograms faults.
 *   cow_copies: pages copied because a fork relative shared them.
 *   forks: regions cloned into a fork child.
 *   pages_decommitted: pages freed by DECOMMIT or a lowered break.
 *   enomem: commitments refused over a limit, plus failed allocations.
 *   sigbus: faults beyond the break.
 *
 * Who sees what in /proc/upalloc/processes: a reader whose opener
 * credentials have CAP_SYS_ADMIN in the initial user namespace sees every
 * line; anyone else sees only the lines of processes whose owning task has
 * the same real uid as the opener's real uid. A process whose owner cannot
 * be resolved is shown to CAP_SYS_ADMIN only. Pids are those of the
 * reader's pid namespace, and a process without a pid there is not shown.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/hashtable.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/pid_namespace.h>
#include <linux/proc_fs.h>
#include <linux/sched/mm.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/uidgid.h>
#include <generated/utsrelease.h>

#include "upalloc.h"
#include "upalloc_compat.h"

static DEFINE_PER_CPU(struct upalloc_counters, upalloc_counters);

/* Pages held by the module (allocated - freed) and their peak. */
static atomic64_t upalloc_pages_live_peak = ATOMIC64_INIT(0);

/* Sum of every live region's break in pages; guarded by the lock. */
static DEFINE_SPINLOCK(upalloc_commit_lock);
static long upalloc_pages_committed;

/* Records by mm; guarded by upalloc_procs_lock (never on the fault path). */
#define UPALLOC_PROC_HASH_BITS	7
static DEFINE_HASHTABLE(upalloc_procs, UPALLOC_PROC_HASH_BITS);
static DEFINE_SPINLOCK(upalloc_procs_lock);

/* User records by uid; guarded by upalloc_procs_lock, never freed early. */
#define UPALLOC_USER_HASH_BITS	5
static DEFINE_HASHTABLE(upalloc_users, UPALLOC_USER_HASH_BITS);

static const char * const upalloc_stat_names[UPALLOC_STAT_LATENCY0] = {
	[UPALLOC_STAT_REGIONS_CREATED] = "regions_created",
	[UPALLOC_STAT_REGIONS_DESTROYED] = "regions_destroyed",
	[UPALLOC_STAT_PAGES_ALLOCATED] = "pages_allocated",
	[UPALLOC_STAT_PAGES_FREED] = "pages_freed",
	[UPALLOC_STAT_FAULTS_READ] = "faults_read",
	[UPALLOC_STAT_FAULTS_WRITE] = "faults_write",
	[UPALLOC_STAT_FAULTS_MKWRITE] = "faults_mkwrite",
	[UPALLOC_STAT_COW_COPIES] = "cow_copies",
	[UPALLOC_STAT_FORKS] = "forks",
	[UPALLOC_STAT_PAGES_POPULATED] = "pages_populated",
	[UPALLOC_STAT_PAGES_DECOMMITTED] = "pages_decommitted",
	[UPALLOC_STAT_ENOMEM] = "enomem",
	[UPALLOC_STAT_SIGBUS] = "sigbus",
};

void upalloc_stat_add(enum upalloc_stat item, u64 n)
{
	this_cpu_add(upalloc_counters.count[item], n);
}

void upalloc_proc_add(struct upalloc_proc *proc, enum upalloc_stat item,
		      u64 n)
{
	this_cpu_add(proc->stats->count[item], n);
}

void upalloc_count(struct upalloc_proc *proc, enum upalloc_stat item, u64 n)
{
	upalloc_stat_add(item, n);
	upalloc_proc_add(proc, item, n);
}

/* Bucket k holds faults that took t ns with floor(log2(max(t, 1))) == k. */
void upalloc_count_fault_latency(struct upalloc_proc *proc, u64 ns)
{
	unsigned int bucket = ns ? ilog2(ns) : 0;

	bucket = min_t(unsigned int, bucket, UPALLOC_LATENCY_BUCKETS - 1);
	upalloc_count(proc, UPALLOC_STAT_LATENCY0 + bucket, 1);
}

/*
 * A live page count and its peak share one 64-bit word, the live count
 * (signed) in the low half and the peak in the high half: one cmpxchg keeps
 * both exact, where a counter and a separate peak took two atomic
 * operations per page on the fault path, and a reader sees a consistent
 * pair. 2^31 pages (8 TiB) is beyond any machine's memory.
 */
static long live_of(u64 live_peak)
{
	return (s32)lower_32_bits(live_peak);
}

static long peak_of(u64 live_peak)
{
	return upper_32_bits(live_peak);
}

static void live_peak_add(atomic64_t *live_peak, long n)
{
	s64 old = atomic64_read(live_peak);
	long live, peak;
	u64 new;

	do {
		live = live_of(old) + n;
		peak = max(peak_of(old), live);
		new = (u64)peak << 32 | (u32)live;
	} while (!atomic64_try_cmpxchg(live_peak, &old, new));
}

/* A page enters (n > 0) or leaves (n < 0) the module's ownership. */
void upalloc_pages_live_add(long n)
{
	live_peak_add(&upalloc_pages_live_peak, n);
}

/* Entries of the process's region tables appear or disappear. */
void upalloc_proc_pages_add(struct upalloc_proc *proc, long n)
{
	live_peak_add(&proc->pages_live_peak, n);
}

static void counters_sum(struct upalloc_counters __percpu *counters,
			 u64 *sum)
{
	unsigned int cpu, i;

	memset(sum, 0, sizeof(u64) * UPALLOC_NR_STATS);
	for_each_possible_cpu(cpu) {
		const struct upalloc_counters *c = per_cpu_ptr(counters, cpu);

		for (i = 0; i < UPALLOC_NR_STATS; i++)
			sum[i] += c->count[i];
	}
}

/*
 * Would pages more for proc take the global count past max_pages, or its
 * user past max_pages_per_user, or (unless fork) proc past
 * max_pages_per_process? Caller holds upalloc_commit_lock.
 */
static bool commit_over_locked(struct upalloc_proc *proc, long pages,
			       bool fork)
{
	unsigned long max = READ_ONCE(upalloc_max_pages);
	unsigned long max_user = READ_ONCE(upalloc_max_pages_per_user);
	unsigned long max_proc = READ_ONCE(upalloc_max_pages_per_process);

	if (pages <= 0)
		return false;
	if (max && upalloc_pages_committed + pages > max)
		return true;
	if (max_user && proc->user->committed + pages > max_user)
		return true;
	return !fork && max_proc && proc->committed + pages > max_proc;
}

static void commit_add_locked(struct upalloc_proc *proc, long pages)
{
	upalloc_pages_committed += pages;
	proc->user->committed += pages;
	proc->committed += pages;
}

/*
 * Change proc's commitment by pages; with check, a raise that would exceed
 * a limit (commit_over_locked(), fork as given) fails with -ENOMEM and
 * changes nothing.
 */
static int commit_change(struct upalloc_proc *proc, long pages, bool check,
			 bool fork)
{
	bool over;

	spin_lock(&upalloc_commit_lock);
	over = check && commit_over_locked(proc, pages, fork);
	if (!over)
		commit_add_locked(proc, pages);
	spin_unlock(&upalloc_commit_lock);
	if (over) {
		upalloc_count(proc, UPALLOC_STAT_ENOMEM, 1);
		return -ENOMEM;
	}
	return 0;
}

/*
 * Change the commitment of proc by pages. Raising it fails with -ENOMEM,
 * changing nothing, when max_pages, max_pages_per_user or
 * max_pages_per_process would be exceeded, unless force is set (for
 * lowering, which never fails).
 */
int upalloc_commit(struct upalloc_proc *proc, long pages, bool force)
{
	return commit_change(proc, pages, !force, false);
}

/*
 * A fork child's copy of a region commits what the parent's does. The
 * per-process limit does not apply (the parent's commitments were within
 * it, and the child has no others yet), but the global and per-user
 * limits do: past them the commitment is refused (-ENOMEM, nothing
 * changed) and the caller leaves the child's region without memory, so
 * that N children can never hold N times the limits.
 */
int upalloc_commit_fork(struct upalloc_proc *proc, long pages)
{
	return commit_change(proc, pages, true, true);
}

static void proc_free(struct upalloc_proc *proc)
{
	free_percpu(proc->stats);
	mmdrop(proc->mm);
	kfree(proc);
}

static void proc_put(struct upalloc_proc *proc)
{
	if (refcount_dec_and_test(&proc->ref))
		proc_free(proc);
}

/* A reference of an orphan page to the record it is counted in. */
void upalloc_proc_hold(struct upalloc_proc *proc)
{
	refcount_inc(&proc->ref);
}

void upalloc_proc_unhold(struct upalloc_proc *proc)
{
	proc_put(proc);
}

static bool proc_is_dead(struct upalloc_proc *proc)
{
	return !proc->regions && !atomic_read(&proc->mm->mm_users);
}

/* Unhash dead records into *dead; caller holds upalloc_procs_lock. */
static void procs_reap_locked(struct hlist_head *dead)
{
	struct upalloc_proc *proc;
	struct hlist_node *tmp;
	unsigned int bkt;

	hash_for_each_safe(upalloc_procs, bkt, tmp, proc, node) {
		if (proc_is_dead(proc)) {
			hash_del(&proc->node);
			hlist_add_head(&proc->node, dead);
		}
	}
}

static void procs_free_list(struct hlist_head *dead)
{
	struct upalloc_proc *proc;
	struct hlist_node *tmp;

	hlist_for_each_entry_safe(proc, tmp, dead, node)
		proc_put(proc);
}

static struct upalloc_proc *proc_find_locked(struct mm_struct *mm)
{
	struct upalloc_proc *proc;

	hash_for_each_possible(upalloc_procs, proc, node, (unsigned long)mm)
		if (proc->mm == mm)
			return proc;
	return NULL;
}

static struct upalloc_user *user_find_locked(kuid_t uid)
{
	struct upalloc_user *user;

	hash_for_each_possible(upalloc_users, user, node, __kuid_val(uid))
		if (uid_eq(user->uid, uid))
			return user;
	return NULL;
}

/*
 * The record of mm, created if needed (allocated with gfp), with one more
 * region counted in it (the caller is creating a region). Returns NULL on
 * allocation failure.
 */
struct upalloc_proc *upalloc_proc_get(struct mm_struct *mm, gfp_t gfp)
{
	struct upalloc_user *user, *new_user;
	struct upalloc_proc *proc, *new;
	kuid_t uid = current_uid();
	HLIST_HEAD(dead);

	spin_lock(&upalloc_procs_lock);
	proc = proc_find_locked(mm);
	if (proc)
		proc->regions++;
	spin_unlock(&upalloc_procs_lock);
	if (proc)
		return proc;

	new = kzalloc(sizeof(*new), gfp);
	if (!new)
		return NULL;
	new_user = kzalloc(sizeof(*new_user), gfp);
	if (!new_user) {
		kfree(new);
		return NULL;
	}
	new_user->uid = uid;
	new->stats = alloc_percpu_gfp(struct upalloc_counters, gfp);
	if (!new->stats) {
		kfree(new_user);
		kfree(new);
		return NULL;
	}
	mmgrab(mm);
	refcount_set(&new->ref, 1);
	new->mm = mm;
	new->tgid = current->mm == mm ? current->tgid : 0;
	new->regions = 1;

	spin_lock(&upalloc_procs_lock);
	procs_reap_locked(&dead);
	proc = proc_find_locked(mm);
	if (proc) {
		proc->regions++;
	} else {
		user = user_find_locked(uid);
		if (!user) {
			hash_add(upalloc_users, &new_user->node,
				 __kuid_val(uid));
			user = new_user;
			new_user = NULL;
		}
		new->user = user;
		hash_add(upalloc_procs, &new->node, (unsigned long)mm);
		proc = new;
		new = NULL;
	}
	spin_unlock(&upalloc_procs_lock);
	if (new)
		proc_free(new);
	kfree(new_user);
	procs_free_list(&dead);
	return proc;
}

/* A region of proc is gone; free the record if its mm is gone too. */
void upalloc_proc_put_region(struct upalloc_proc *proc)
{
	bool dead;

	spin_lock(&upalloc_procs_lock);
	proc->regions--;
	dead = proc_is_dead(proc);
	if (dead)
		hash_del(&proc->node);
	spin_unlock(&upalloc_procs_lock);
	if (dead)
		proc_put(proc);
}

/* The caller's own statistics; zero when it never had a region. */
void upalloc_proc_fill_stats(struct upalloc_proc_stats *st)
{
	u64 sum[UPALLOC_NR_STATS];
	struct upalloc_proc *proc;
	u64 live_peak;

	upalloc_orphans_reap();
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	st->version = UPALLOC_ABI_VERSION;

	spin_lock(&upalloc_procs_lock);
	proc = current->mm ? proc_find_locked(current->mm) : NULL;
	if (proc) {
		counters_sum(proc->stats, sum);
		st->regions_live = proc->regions;
		live_peak = atomic64_read(&proc->pages_live_peak);
		st->pages_live = live_of(live_peak);
		st->pages_peak = peak_of(live_peak);
		st->pages_committed = READ_ONCE(proc->committed);
		st->regions_created = sum[UPALLOC_STAT_REGIONS_CREATED];
		st->pages_allocated = sum[UPALLOC_STAT_PAGES_ALLOCATED];
		st->pages_freed = sum[UPALLOC_STAT_PAGES_FREED];
		st->faults_read = sum[UPALLOC_STAT_FAULTS_READ];
		st->faults_write = sum[UPALLOC_STAT_FAULTS_WRITE];
		st->faults = st->faults_read + st->faults_write;
		st->cow_copies = sum[UPALLOC_STAT_COW_COPIES];
		st->pages_populated = sum[UPALLOC_STAT_PAGES_POPULATED];
		st->pages_decommitted = sum[UPALLOC_STAT_PAGES_DECOMMITTED];
		st->enomem = sum[UPALLOC_STAT_ENOMEM];
		st->faults_mkwrite = sum[UPALLOC_STAT_FAULTS_MKWRITE];
		st->sigbus = sum[UPALLOC_STAT_SIGBUS];
	}
	spin_unlock(&upalloc_procs_lock);
}

static void stat_line(struct seq_file *m, const char *name, u64 value)
{
	seq_printf(m, "%s %llu\n", name, value);
}

static int upalloc_stats_show(struct seq_file *m, void *v)
{
	u64 sum[UPALLOC_NR_STATS];
	unsigned int i;
	u64 live_peak;

	upalloc_orphans_reap();
	live_peak = atomic64_read(&upalloc_pages_live_peak);
	counters_sum(&upalloc_counters, sum);
	stat_line(m, "regions_live", sum[UPALLOC_STAT_REGIONS_CREATED] -
		  sum[UPALLOC_STAT_REGIONS_DESTROYED]);
	for (i = UPALLOC_STAT_REGIONS_CREATED;
	     i <= UPALLOC_STAT_REGIONS_DESTROYED; i++)
		stat_line(m, upalloc_stat_names[i], sum[i]);
	stat_line(m, "pages_live", live_of(live_peak));
	stat_line(m, "pages_peak", peak_of(live_peak));
	stat_line(m, "pages_committed", READ_ONCE(upalloc_pages_committed));
	stat_line(m, "pages_allocated", sum[UPALLOC_STAT_PAGES_ALLOCATED]);
	stat_line(m, "pages_freed", sum[UPALLOC_STAT_PAGES_FREED]);
	stat_line(m, "faults", sum[UPALLOC_STAT_FAULTS_READ] +
		  sum[UPALLOC_STAT_FAULTS_WRITE]);
	for (i = UPALLOC_STAT_FAULTS_READ; i < UPALLOC_STAT_LATENCY0; i++)
		stat_line(m, upalloc_stat_names[i], sum[i]);
	for (i = 0; i < UPALLOC_LATENCY_BUCKETS; i++)
		seq_printf(m, "fault_latency_log2ns_%u %llu\n", i,
			   sum[UPALLOC_STAT_LATENCY0 + i]);
	return 0;
}

static bool proc_visible(struct seq_file *m, bool all, kuid_t uid)
{
	return all || uid_eq(uid, m->file->f_cred->uid);
}

/*
 * One line for proc, unless the reader may not see it: another user's
 * process (without CAP_SYS_ADMIN), or one outside the reader's pid
 * namespace (it has no pid there, and pid 0 would be a lie). Runs without
 * upalloc_procs_lock; the caller holds a reference on proc.
 */
static void processes_line(struct seq_file *m, struct upalloc_proc *proc,
			   bool all, struct pid_namespace *ns)
{
	char comm[TASK_COMM_LEN] = "?";
	struct task_struct *owner;
	u64 sum[UPALLOC_NR_STATS];
	kuid_t uid = INVALID_UID;
	pid_t pid = 0;
	u64 live_peak;

	rcu_read_lock();
	owner = upalloc_mm_owner(proc->mm);
	if (owner) {
		pid = task_tgid_nr_ns(owner, ns);
		get_task_comm(comm, owner);
		uid = task_uid(owner);
	} else if (ns == &init_pid_ns) {
		/* The creator's tgid, a number of the initial namespace. */
		pid = proc->tgid;
	}
	rcu_read_unlock();
	if (!pid || !proc_visible(m, all, uid))
		return;

	counters_sum(proc->stats, sum);
	seq_printf(m, "%d ", pid);
	seq_escape(m, comm, " \t\n\\");
	live_peak = atomic64_read(&proc->pages_live_peak);
	seq_printf(m, " %ld %ld %ld %ld %llu\n", READ_ONCE(proc->regions),
		   live_of(live_peak), peak_of(live_peak),
		   READ_ONCE(proc->committed),
		   sum[UPALLOC_STAT_FAULTS_READ] + sum[UPALLOC_STAT_FAULTS_WRITE]);
}

/*
 * Take a reference on up to max records that have regions into procs;
 * returns how many, or max + 1 if there were more.
 */
static unsigned int processes_snapshot(struct upalloc_proc **procs,
				       unsigned int max)
{
	struct upalloc_proc *proc;
	unsigned int bkt, n = 0;

	spin_lock(&upalloc_procs_lock);
	hash_for_each(upalloc_procs, bkt, proc, node) {
		if (!proc->regions)
			continue;
		if (n == max) {
			n++;
			break;
		}
		refcount_inc(&proc->ref);
		procs[n++] = proc;
	}
	spin_unlock(&upalloc_procs_lock);
	return n;
}

static unsigned int processes_count(void)
{
	struct upalloc_proc *proc;
	unsigned int bkt, n = 0;

	spin_lock(&upalloc_procs_lock);
	hash_for_each(upalloc_procs, bkt, proc, node)
		n += !!proc->regions;
	spin_unlock(&upalloc_procs_lock);
	return n;
}

/*
 * The records are pinned under upalloc_procs_lock (a pointer copy each)
 * and formatted without it: summing every record's per-CPU counters and
 * finding its owner under the lock stalled every mmap, munmap and fork
 * of the device for as long as a reader took.
 */
static int upalloc_processes_show(struct seq_file *m, void *v)
{
	bool all = file_ns_capable(m->file, &init_user_ns, CAP_SYS_ADMIN);
	struct pid_namespace *ns = task_active_pid_ns(current);
	struct upalloc_proc **procs;
	unsigned int max, n, i;

	upalloc_orphans_reap();
	seq_puts(m, "pid comm regions pages_live pages_peak pages_committed faults\n");
	for (;;) {
		/* Room for records created meanwhile, or try again. */
		max = processes_count() + 16;
		procs = kvmalloc_array(max, sizeof(*procs), GFP_KERNEL);
		if (!procs)
			return -ENOMEM;
		n = processes_snapshot(procs, max);
		if (n <= max)
			break;
		for (i = 0; i < max; i++)
			proc_put(procs[i]);
		kvfree(procs);
	}
	for (i = 0; i < n; i++) {
		processes_line(m, procs[i], all, ns);
		proc_put(procs[i]);
		cond_resched();
	}
	kvfree(procs);
	return 0;
}

/*
 * The kernel release this module was compiled against (its vermagic's
 * first word), so that tools can tell which build of upalloc.ko is loaded.
 */
static int upalloc_build_show(struct seq_file *m, void *v)
{
	seq_puts(m, "kernel_release " UTS_RELEASE "\n");
	return 0;
}

int upalloc_stats_init(void)
{
	struct proc_dir_entry *dir;

	dir = proc_mkdir("upalloc", NULL);
	if (!dir)
		return -ENOMEM;
	if (!proc_create_single("stats", 0444, dir, upalloc_stats_show) ||
	    !proc_create_single("processes", 0444, dir,
				upalloc_processes_show) ||
	    !proc_create_single("build", 0444, dir, upalloc_build_show)) {
		remove_proc_subtree("upalloc", NULL);
		return -ENOMEM;
	}
	return 0;
}

/* Called after the last region is gone: every record is dead or idle. */
void upalloc_stats_exit(void)
{
	struct hlist_node *tmp, *tmp_user;
	struct upalloc_user *user;
	struct upalloc_proc *proc;
	HLIST_HEAD(dead);
	unsigned int bkt;

	remove_proc_subtree("upalloc", NULL);
	spin_lock(&upalloc_procs_lock);
	hash_for_each_safe(upalloc_procs, bkt, tmp, proc, node) {
		WARN_ON(proc->regions);
		WARN_ON(refcount_read(&proc->ref) != 1);
		hash_del(&proc->node);
		hlist_add_head(&proc->node, &dead);
	}
	hash_for_each_safe(upalloc_users, bkt, tmp_user, user, node) {
		WARN_ON(user->committed);
		hash_del(&user->node);
		kfree(user);
	}
	spin_unlock(&upalloc_procs_lock);
	procs_free_list(&dead);
}
