# Writes OUTPUT, a C++ file defining kaisar::onenode::openapi_document() that returns INPUT's text.
file(READ ${INPUT} content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
file(WRITE ${OUTPUT} "#include <string_view>\nnamespace kaisar::onenode {\nnamespace {\nconstexpr char kText[] = {${bytes} 0};\n}\nstd::string_view openapi_document() { return {kText, sizeof kText - 1}; }\n}  // namespace kaisar::onenode\n")
