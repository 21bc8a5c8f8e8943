#ifndef MTAD_DELIVER_H
#define MTAD_DELIVER_H

#include "proc.h"

#endif
