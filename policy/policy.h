#ifndef MTAD_POLICY_H
#define MTAD_POLICY_H

#include "proc.h"

#endif
