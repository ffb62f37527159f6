// SPDX-License-Identifier: GPL-2.0
/*
 * Description: tracepoints (issue 2, item 9). The module's events under
 * tracefs events/upalloc/ (fault, region_create, region_destroy, decommit)
 * can be enabled and record exactly one event per fault, region creation,
 * region destruction and decommit of this process. SKIPs without tracefs.
 */
#include "upalloc_test.h"

static const char *const tracefs_roots[] = {
	"/sys/kernel/tracing",
	"/sys/kernel/debug/tracing",
};

FIXTURE(tracepoints) {
	int fd;
	char root[64];
	bool tracing;
};

static int write_file(const char *root, const char *rel, const char *text,
		      int flags)
{
	char path[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	fd = open(path, O_WRONLY | O_CLOEXEC | flags);
	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

static int set_event(const char *root, const char *event, bool on)
{
	char rel[128];

	snprintf(rel, sizeof(rel), "events/upalloc/%s/enable", event);
	return write_file(root, rel, on ? "1" : "0", 0);
}

static void tracing_off(const char *root)
{
	write_file(root, "events/upalloc/enable", "0", 0);
	write_file(root, "set_event_pid", "", O_TRUNC);
	write_file(root, "trace", "", O_TRUNC);
}

FIXTURE_SETUP(tracepoints)
{
	char path[128];
	size_t i;

	OPEN_DEVICE_OR_SKIP(&self->fd);
	for (i = 0; i < ARRAY_SIZE(tracefs_roots); i++) {
		snprintf(path, sizeof(path), "%s/trace", tracefs_roots[i]);
		if (!access(path, F_OK)) {
			snprintf(self->root, sizeof(self->root), "%s", tracefs_roots[i]);
			break;
		}
	}
	if (!self->root[0])
		SKIP(return, "tracefs is not mounted");
	if (geteuid())
		SKIP(return, "needs root for tracefs");
	snprintf(path, sizeof(path), "%s/events/upalloc", self->root);
	ASSERT_EQ(0, access(path, F_OK)) TH_LOG("no upalloc events in %s", self->root);

	/* Only this process's events, in an empty buffer. */
	tracing_off(self->root);
	snprintf(path, sizeof(path), "%d", getpid());
	ASSERT_EQ(0, write_file(self->root, "set_event_pid", path, O_TRUNC));
	ASSERT_EQ(0, write_file(self->root, "tracing_on", "1", 0));
	self->tracing = true;
}

FIXTURE_TEARDOWN(tracepoints)
{
	if (self->tracing)
		tracing_off(self->root);
	if (self->fd >= 0)
		close(self->fd);
}

/* Lines of the trace buffer recording "<event>:" for this pid. */
static int count_events(const char *root, const char *event)
{
	char path[256], line[1024], tag[64], who[32];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/trace", root);
	snprintf(tag, sizeof(tag), " %s:", event);
	snprintf(who, sizeof(who), "-%d ", getpid());
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#')
			continue;
		if (strstr(line, tag) && strstr(line, who))
			n++;
	}
	fclose(f);
	return n;
}

TEST_F(tracepoints, fault_event_is_emitted)
{
	char *p;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(4), 0);
	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, set_event(self->root, "fault", true));
	read_pages(p, 0, 1);
	write_pages(p, 1, 2, 1);
	write_pages(p, 0, 3, 2);	/* no new faults */
	ASSERT_EQ(0, set_event(self->root, "fault", false));
	EXPECT_EQ(3, count_events(self->root, "fault"));
	ASSERT_EQ(0, munmap(p, PAGES(4)));
}

TEST_F(tracepoints, region_create_and_destroy_events_are_emitted)
{
	char *a, *b;

	NEED_DEVICE();
	ASSERT_EQ(0, set_event(self->root, "region_create", true));
	ASSERT_EQ(0, set_event(self->root, "region_destroy", true));
	a = upa_map(self->fd, PAGES(2), 0);
	ASSERT_NE(NULL, a);
	b = upa_map_heap(self->fd, PAGES(8));
	ASSERT_NE(NULL, b);
	ASSERT_EQ(0, munmap(a, PAGES(2)));
	EXPECT_EQ(2, count_events(self->root, "region_create"));
	EXPECT_EQ(1, count_events(self->root, "region_destroy"));
	ASSERT_EQ(0, munmap(b, PAGES(8)));
	EXPECT_EQ(2, count_events(self->root, "region_destroy"));
	set_event(self->root, "region_create", false);
	set_event(self->root, "region_destroy", false);
}

TEST_F(tracepoints, decommit_event_is_emitted)
{
	char *p;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(4), 0);
	ASSERT_NE(NULL, p);
	write_pages(p, 0, 4, 1);
	ASSERT_EQ(0, set_event(self->root, "decommit", true));
	ASSERT_EQ(0, upa_decommit(self->fd, p, PAGES(2), NULL));
	ASSERT_EQ(0, upa_decommit(self->fd, p + PAGES(2), PAGES(2), NULL));
	ASSERT_EQ(0, set_event(self->root, "decommit", false));
	EXPECT_EQ(2, count_events(self->root, "decommit"));
	ASSERT_EQ(0, munmap(p, PAGES(4)));
}

UPALLOC_TEST_MAIN
