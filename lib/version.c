/* The version casestream was built as: the Makefile passes CS_VERSION (`git describe`). */
#include "config.h"

#ifndef CS_VERSION
#define CS_VERSION "unknown"
#endif

const char cs_version[] = CS_VERSION;
