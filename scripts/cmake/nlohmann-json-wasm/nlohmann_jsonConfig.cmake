# Emscripten builds cannot use Debian's nlohmann_json package config as is: it adds
# `-isystem /usr/include`, which drags glibc headers in front of Emscripten's libc. This config
# exposes only the header-only library's own folder. Use it with
#   emcmake cmake ... -Dnlohmann_json_DIR=<this folder>
# (scripts/build-wasm.sh does).
set(nlohmann_json_VERSION 3.11.2)
set(_earshot_shim_include ${CMAKE_CURRENT_BINARY_DIR}/nlohmann-json-wasm-include)
if(NOT EXISTS ${_earshot_shim_include}/nlohmann/json.hpp)
  file(MAKE_DIRECTORY ${_earshot_shim_include})
  file(CREATE_LINK /usr/include/nlohmann ${_earshot_shim_include}/nlohmann SYMBOLIC)
endif()
if(NOT TARGET nlohmann_json::nlohmann_json)
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
  set_target_properties(nlohmann_json::nlohmann_json PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES ${_earshot_shim_include})
endif()
