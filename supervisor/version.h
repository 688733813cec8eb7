#ifndef ARBOR_VERSION_H
#define ARBOR_VERSION_H
#define ARBOR_VERSION	"0.1.0"
#endif
