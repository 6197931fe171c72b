/* Fault points: a named place where a program dies on purpose, for crash tests. */
#ifndef CS_FAULT_H
#define CS_FAULT_H

/* Arms the fault point named name ("" or NULL disarms). The name is copied. */
void cs_fault_arm(const char *name);

/* If the armed fault point is name, logs it and _exit(70)s at once, with no
 * cleanup, as a crash would. Cheap when nothing is armed. */
void cs_fault_point(const char *name);

#endif
