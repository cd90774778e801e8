# Writes OUT, a C file defining co_job_template_text[] (NUL-terminated) and co_job_template_len
# from the bytes of IN. Hex, not a string literal: no escaping to get wrong, no length limit.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT} "/* Generated from ${IN} by embed.cmake; do not edit. */\n#include <stddef.h>\n"
  "extern const char co_job_template_text[];\nextern const size_t co_job_template_len;\n"
  "const char co_job_template_text[] = {\n${bytes}0x00};\nconst size_t co_job_template_len = ${len};\n")
