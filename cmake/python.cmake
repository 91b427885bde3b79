# The Python module: uotflow._uotflow (pybind11) linked against the shared library and the
# LibTorch of Debian's python3-torch (its libtorch_python), so that torch.Tensor crosses without a
# copy. The package is laid out in build/python/uotflow/, importable with PYTHONPATH=build/python,
# and installed by `make install` into the interpreter's dist-packages under the prefix.

# Debian's python3 is the one whose torch shares LibTorch with libtorch-dev (a python3 earlier on
# PATH, e.g. of pyenv, has no torch).
if(EXISTS /usr/bin/python3)
  set(UOTFLOW_PYTHON_DEFAULT /usr/bin/python3)
else()
  find_program(UOTFLOW_PYTHON_DEFAULT python3 REQUIRED)
endif()
set(UOTFLOW_PYTHON ${UOTFLOW_PYTHON_DEFAULT} CACHE FILEPATH "Python interpreter of the module")
set(Python_EXECUTABLE ${UOTFLOW_PYTHON})
set(PYBIND11_FINDPYTHON ON)
find_package(pybind11 2.6 CONFIG REQUIRED)
find_library(UOTFLOW_TORCH_PYTHON_LIBRARY torch_python HINTS ${TORCH_INSTALL_PREFIX}/lib REQUIRED)

# NO_EXTRAS: no link-time optimisation (a serial LTO link costs more build time than it saves).
pybind11_add_module(uotflow_python MODULE NO_EXTRAS python/src/module.cpp)
set_target_properties(uotflow_python PROPERTIES
  OUTPUT_NAME _uotflow
  LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/python/uotflow
  # Installed: the library is three folders up (PREFIX/lib/python3/dist-packages/uotflow).
  INSTALL_RPATH "$ORIGIN/../../..")
target_link_libraries(uotflow_python PRIVATE uotflow ${UOTFLOW_TORCH_PYTHON_LIBRARY})
target_compile_definitions(uotflow_python PRIVATE TORCH_EXTENSION_NAME=_uotflow)
target_compile_options(uotflow_python PRIVATE -Wall -Wextra)

# The pure-Python part of the package, copied next to the module at build time.
file(GLOB UOTFLOW_PY_FILES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/python/uotflow/*.py)
foreach(f ${UOTFLOW_PY_FILES})
  get_filename_component(name ${f} NAME)
  add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/python/uotflow/${name}
                     COMMAND ${CMAKE_COMMAND} -E copy ${f} ${PROJECT_BINARY_DIR}/python/uotflow/${name}
                     DEPENDS ${f})
  list(APPEND UOTFLOW_PY_OUTPUTS ${PROJECT_BINARY_DIR}/python/uotflow/${name})
endforeach()
add_custom_target(uotflow_python_files ALL DEPENDS ${UOTFLOW_PY_OUTPUTS})
add_dependencies(uotflow_python uotflow_python_files)

set(UOTFLOW_PYTHON_INSTALL_DIR lib/python3/dist-packages CACHE STRING
    "Where `make install` puts the Python package, under the prefix")
install(TARGETS uotflow_python LIBRARY DESTINATION ${UOTFLOW_PYTHON_INSTALL_DIR}/uotflow)
install(FILES ${UOTFLOW_PY_FILES} DESTINATION ${UOTFLOW_PYTHON_INSTALL_DIR}/uotflow)
