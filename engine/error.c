/* error.c — the engine's error table (engine.h ENG_ERR_MAP) and the eng_error filler. */
#include <stdarg.h>
#include <stdio.h>

#include "engine/internal.h"

const char *eng_strerror(int code) {
  switch (code) {
    case ENG_OK: return "success";
#define ENG__ERR_CASE(name, msg) \
  case ENG_E##name: return msg;
    ENG_ERR_MAP(ENG__ERR_CASE)
#undef ENG__ERR_CASE
    default: return "unknown error";
  }
}

int eng__err(eng_error *err, int code, const char *fmt, ...) {
  if (err) {
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}
