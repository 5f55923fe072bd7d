// libarchive, loaded on first use: the functions the agent calls (cache export/import,
// artifact archives). A new call into libarchive needs a line here, or the link fails
// with an undefined symbol (the library itself is not linked).
#include "lazy.h"

#include <archive.h>
#include <archive_entry.h>

// libarchive 3.x keeps soname 13; a different major version would need a new name here.
#if ARCHIVE_VERSION_NUMBER < 3000000 || ARCHIVE_VERSION_NUMBER >= 4000000
#error "libarchive 3.x (libarchive.so.13) expected"
#endif
static void *archive_handle;
static const char archive_soname[] = "libarchive.so.13";

AGENT_LAZY(archive, struct archive *, archive_read_new, (void), ())
AGENT_LAZY(archive, struct archive *, archive_read_disk_new, (void), ())
AGENT_LAZY(archive, struct archive *, archive_write_new, (void), ())
AGENT_LAZY(archive, struct archive *, archive_write_disk_new, (void), ())
AGENT_LAZY(archive, struct archive_entry *, archive_entry_new, (void), ())
AGENT_LAZY_VOID(archive, archive_entry_free, (struct archive_entry *e), (e))
AGENT_LAZY_VOID(archive, archive_entry_copy_hardlink, (struct archive_entry *e, const char *s), (e, s))
AGENT_LAZY_VOID(archive, archive_entry_copy_pathname, (struct archive_entry *e, const char *s), (e, s))
AGENT_LAZY(archive, mode_t, archive_entry_filetype, (struct archive_entry *e), (e))
AGENT_LAZY(archive, mode_t, archive_entry_perm, (struct archive_entry *e), (e))
AGENT_LAZY_VOID(archive, archive_entry_set_perm, (struct archive_entry *e, mode_t m), (e, m))
AGENT_LAZY(archive, const char *, archive_entry_hardlink, (struct archive_entry *e), (e))
AGENT_LAZY(archive, const char *, archive_entry_pathname, (struct archive_entry *e), (e))
AGENT_LAZY(archive, la_int64_t, archive_entry_size, (struct archive_entry *e), (e))
AGENT_LAZY(archive, la_int64_t, archive_entry_uid, (struct archive_entry *e), (e))
AGENT_LAZY(archive, la_int64_t, archive_entry_gid, (struct archive_entry *e), (e))
AGENT_LAZY(archive, const char *, archive_entry_symlink, (struct archive_entry *e), (e))
AGENT_LAZY(archive, int, archive_read_support_format_raw, (struct archive *a), (a))
AGENT_LAZY(archive, const char *, archive_error_string, (struct archive *a), (a))
AGENT_LAZY(archive, int, archive_read_close, (struct archive *a), (a))
AGENT_LAZY(archive, la_ssize_t, archive_read_data, (struct archive *a, void *b, size_t n), (a, b, n))
AGENT_LAZY(archive, int, archive_read_data_block,
           (struct archive *a, const void **b, size_t *n, la_int64_t *o), (a, b, n, o))
AGENT_LAZY(archive, int, archive_read_data_skip, (struct archive *a), (a))
AGENT_LAZY(archive, int, archive_read_disk_descend, (struct archive *a), (a))
AGENT_LAZY(archive, int, archive_read_disk_open, (struct archive *a, const char *p), (a, p))
AGENT_LAZY(archive, int, archive_read_disk_set_standard_lookup, (struct archive *a), (a))
AGENT_LAZY(archive, int, archive_read_disk_set_symlink_physical, (struct archive *a), (a))
AGENT_LAZY(archive, int, archive_read_free, (struct archive *a), (a))
AGENT_LAZY(archive, int, archive_read_next_header, (struct archive *a, struct archive_entry **e), (a, e))
AGENT_LAZY(archive, int, archive_read_next_header2, (struct archive *a, struct archive_entry *e), (a, e))
AGENT_LAZY(archive, int, archive_read_open_filename, (struct archive *a, const char *f, size_t n), (a, f, n))
// A tar read from another reader's output (one decompression for the diff_id and the unpack).
AGENT_LAZY(archive, int, archive_read_open,
           (struct archive *a, void *c, archive_open_callback *o, archive_read_callback *r, archive_close_callback *cl),
           (a, c, o, r, cl))
AGENT_LAZY(archive, int, archive_read_support_filter_gzip, (struct archive *a), (a))
AGENT_LAZY(archive, int, archive_read_support_filter_zstd, (struct archive *a), (a))
AGENT_LAZY(archive, int, archive_read_support_format_tar, (struct archive *a), (a))
AGENT_LAZY(archive, int, archive_write_add_filter_gzip, (struct archive *a), (a))
AGENT_LAZY(archive, int, archive_write_add_filter_zstd, (struct archive *a), (a))
AGENT_LAZY(archive, int, archive_write_close, (struct archive *a), (a))
AGENT_LAZY(archive, la_ssize_t, archive_write_data, (struct archive *a, const void *b, size_t n), (a, b, n))
AGENT_LAZY(archive, la_ssize_t, archive_write_data_block,
           (struct archive *a, const void *b, size_t n, la_int64_t o), (a, b, n, o))
AGENT_LAZY(archive, int, archive_write_disk_set_options, (struct archive *a, int flags), (a, flags))
AGENT_LAZY(archive, int, archive_write_finish_entry, (struct archive *a), (a))
AGENT_LAZY(archive, int, archive_write_free, (struct archive *a), (a))
AGENT_LAZY(archive, int, archive_write_header, (struct archive *a, struct archive_entry *e), (a, e))
AGENT_LAZY(archive, int, archive_write_open_filename, (struct archive *a, const char *f), (a, f))
AGENT_LAZY(archive, int, archive_write_set_format_pax_restricted, (struct archive *a), (a))
// The write side of image layers and exports (Images: LayerWriter, ImageExport).
AGENT_LAZY(archive, int, archive_write_open,
           (struct archive *a, void *c, archive_open_callback *o, archive_write_callback *w, archive_close_callback *cl),
           (a, c, o, w, cl))
AGENT_LAZY(archive, int, archive_write_set_format_raw, (struct archive *a), (a))
AGENT_LAZY(archive, int, archive_write_set_filter_option,
           (struct archive *a, const char *m, const char *o, const char *v), (a, m, o, v))
AGENT_LAZY(archive, int, archive_write_set_format_option,
           (struct archive *a, const char *m, const char *o, const char *v), (a, m, o, v))
AGENT_LAZY(archive, int, archive_write_set_bytes_per_block, (struct archive *a, int n), (a, n))
AGENT_LAZY(archive, int, archive_write_set_bytes_in_last_block, (struct archive *a, int n), (a, n))
AGENT_LAZY(archive, int, archive_read_open_fd, (struct archive *a, int fd, size_t n), (a, fd, n))
AGENT_LAZY_VOID(archive, archive_entry_set_filetype, (struct archive_entry *e, unsigned int t), (e, t))
AGENT_LAZY_VOID(archive, archive_entry_set_size, (struct archive_entry *e, la_int64_t s), (e, s))
AGENT_LAZY_VOID(archive, archive_entry_set_mtime, (struct archive_entry *e, time_t t, long n), (e, t, n))
AGENT_LAZY_VOID(archive, archive_entry_set_uid, (struct archive_entry *e, la_int64_t u), (e, u))
AGENT_LAZY_VOID(archive, archive_entry_set_gid, (struct archive_entry *e, la_int64_t g), (e, g))
AGENT_LAZY_VOID(archive, archive_entry_copy_symlink, (struct archive_entry *e, const char *s), (e, s))
AGENT_LAZY_VOID(archive, archive_entry_set_rdevmajor, (struct archive_entry *e, dev_t d), (e, d))
AGENT_LAZY_VOID(archive, archive_entry_set_rdevminor, (struct archive_entry *e, dev_t d), (e, d))
AGENT_LAZY_VOID(archive, archive_entry_xattr_add_entry,
                (struct archive_entry *e, const char *n, const void *v, size_t s), (e, n, v, s))
AGENT_LAZY(archive, int, archive_entry_xattr_reset, (struct archive_entry *e), (e))
AGENT_LAZY(archive, int, archive_entry_xattr_next,
           (struct archive_entry *e, const char **n, const void **v, size_t *s), (e, n, v, s))
AGENT_LAZY(archive, time_t, archive_entry_mtime, (struct archive_entry *e), (e))
AGENT_LAZY(archive, dev_t, archive_entry_rdevmajor, (struct archive_entry *e), (e))
AGENT_LAZY(archive, dev_t, archive_entry_rdevminor, (struct archive_entry *e), (e))
AGENT_LAZY(archive, int, archive_entry_size_is_set, (struct archive_entry *e), (e))
