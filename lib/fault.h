/* Fault points: a named place where a program dies on purpose, for crash tests. */
#ifndef CS_FAULT_H
#define CS_FAULT_H

#include <stddef.h>

/* Exit status of a program stopped at a fault point. */
#define CS_EXIT_FAULT 70

/* Arms the fault point name, which must be one of points (NULL-terminated);
 * "" or NULL disarms. Returns 0, or CS_ERR_INVALID for an unknown name with
 * the known ones listed in errstr. */
int cs_fault_arm(const char *name, const char *const *points, char *errstr, size_t errstr_size);

/* If the armed fault point is name, logs it and _exit(CS_EXIT_FAULT)s at
 * once, with no cleanup, as a crash would. Cheap when nothing is armed. */
void cs_fault_point(const char *name);

#endif
