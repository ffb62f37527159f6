/* SPDX-License-Identifier: GPL-2.0 */
/*
 * upalloc tracepoints, under events/upalloc/ in tracefs. A region is named
 * by its base page offset (vm_pgoff), which is unique while it lives; a
 * fork clone keeps its parent's.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM upalloc

#if !defined(_UPALLOC_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _UPALLOC_TRACE_H

#include <linux/tracepoint.h>

/* One ->fault call that mapped a page or refused with SIGBUS. */
TRACE_EVENT(fault,
	    TP_PROTO(unsigned long region, unsigned long addr,
		     unsigned long idx, bool write, unsigned int result,
		     u64 ns),
	    TP_ARGS(region, addr, idx, write, result, ns),
	    TP_STRUCT__entry(__field(unsigned long, region)
			     __field(unsigned long, addr)
			     __field(unsigned long, idx)
			     __field(bool, write)
			     __field(unsigned int, result)
			     __field(u64, ns)),
	    TP_fast_assign(__entry->region = region;
			   __entry->addr = addr;
			   __entry->idx = idx;
			   __entry->write = write;
			   __entry->result = result;
			   __entry->ns = ns;),
	    TP_printk("region=%lx addr=%lx idx=%lu %s result=0x%x ns=%llu",
		      __entry->region, __entry->addr, __entry->idx,
		      __entry->write ? "write" : "read", __entry->result,
		      __entry->ns)
);

TRACE_EVENT(region_create,
	    TP_PROTO(unsigned long region, unsigned long nr_pages,
		     unsigned long brk, bool heap, bool forked),
	    TP_ARGS(region, nr_pages, brk, heap, forked),
	    TP_STRUCT__entry(__field(unsigned long, region)
			     __field(unsigned long, nr_pages)
			     __field(unsigned long, brk)
			     __field(bool, heap)
			     __field(bool, forked)),
	    TP_fast_assign(__entry->region = region;
			   __entry->nr_pages = nr_pages;
			   __entry->brk = brk;
			   __entry->heap = heap;
			   __entry->forked = forked;),
	    TP_printk("region=%lx pages=%lu brk=%lu heap=%d forked=%d",
		      __entry->region, __entry->nr_pages, __entry->brk,
		      __entry->heap, __entry->forked)
);

TRACE_EVENT(region_destroy,
	    TP_PROTO(unsigned long region, unsigned long nr_present),
	    TP_ARGS(region, nr_present),
	    TP_STRUCT__entry(__field(unsigned long, region)
			     __field(unsigned long, nr_present)),
	    TP_fast_assign(__entry->region = region;
			   __entry->nr_present = nr_present;),
	    TP_printk("region=%lx pages=%lu", __entry->region,
		      __entry->nr_present)
);

/* Pages taken out of [first, last) by DECOMMIT or a lowered break. */
TRACE_EVENT(decommit,
	    TP_PROTO(unsigned long region, unsigned long first,
		     unsigned long last, unsigned long nr_freed),
	    TP_ARGS(region, first, last, nr_freed),
	    TP_STRUCT__entry(__field(unsigned long, region)
			     __field(unsigned long, first)
			     __field(unsigned long, last)
			     __field(unsigned long, nr_freed)),
	    TP_fast_assign(__entry->region = region;
			   __entry->first = first;
			   __entry->last = last;
			   __entry->nr_freed = nr_freed;),
	    TP_printk("region=%lx idx=[%lu,%lu) pages=%lu", __entry->region,
		      __entry->first, __entry->last, __entry->nr_freed)
);

#endif /* _UPALLOC_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE upalloc_trace
#include <trace/define_trace.h>
