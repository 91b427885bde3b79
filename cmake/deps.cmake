# Where the dependencies beyond LibTorch come from on a machine without the Debian -dev packages, e.g. a
# GPU machine that has only PyTorch from pip (its LibTorch: -DCMAKE_PREFIX_PATH=$(python3 -c 'import
# torch; print(torch.utils.cmake_prefix_path)')). scripts/device_deps.sh copies the header-only
# dependencies and the GoogleTest sources from the Debian packages into .deps/; configure with
# -DUOTFLOW_DEPS_DIR=<repo>/.deps and that folder is searched first (scripts/device_check.sh does this).
# With UOTFLOW_DEPS_DIR empty and UOTFLOW_GTEST_FROM_SOURCE off (the defaults) every search is the
# plain Debian one, REQUIRED as before.

set(UOTFLOW_DEPS_DIR "" CACHE PATH
    "Prefix filled by scripts/device_deps.sh (include/, share/cmake/, src/googletest/), searched first")
option(UOTFLOW_GTEST_FROM_SOURCE
       "Build GoogleTest from its sources (UOTFLOW_GTEST_SOURCE_DIR) instead of find_package(GTest)" OFF)
set(UOTFLOW_GTEST_SOURCE_DIR "" CACHE PATH
    "GoogleTest sources for that build; empty: UOTFLOW_DEPS_DIR/src/googletest, else /usr/src/googletest")

if(UOTFLOW_DEPS_DIR)
  get_filename_component(UOTFLOW_DEPS_DIR "${UOTFLOW_DEPS_DIR}" ABSOLUTE BASE_DIR "${PROJECT_SOURCE_DIR}")
  if(NOT IS_DIRECTORY "${UOTFLOW_DEPS_DIR}/include")
    message(FATAL_ERROR "UOTFLOW_DEPS_DIR '${UOTFLOW_DEPS_DIR}' has no include/ folder: run scripts/device_deps.sh")
  endif()
  # Its include/ and share/cmake/<package>/ are then found by find_path and find_package.
  list(PREPEND CMAKE_PREFIX_PATH "${UOTFLOW_DEPS_DIR}")
  message(STATUS "uotflow: dependencies from ${UOTFLOW_DEPS_DIR} first")
endif()

# Boost (header-only parts: Boost.Sort) -> Boost_INCLUDE_DIRS. Without a Boost that CMake finds, the
# subset of headers that device_deps.sh copied.
macro(uotflow_find_boost)
  if(UOTFLOW_DEPS_DIR)
    find_package(Boost 1.71 QUIET)
    if(NOT Boost_FOUND)
      find_path(UOTFLOW_BOOST_INCLUDE_DIR boost/sort/pdqsort/pdqsort.hpp REQUIRED)
      set(Boost_INCLUDE_DIRS "${UOTFLOW_BOOST_INCLUDE_DIR}")
      message(STATUS "uotflow: Boost headers from ${UOTFLOW_BOOST_INCLUDE_DIR}")
    endif()
  else()
    find_package(Boost 1.71 REQUIRED)
  endif()
endmacro()

# GoogleTest -> the targets GTest::gtest and GTest::gtest_main. find_package(GTest), else (or with
# UOTFLOW_GTEST_FROM_SOURCE) built here from its sources, excluded from `all` except what links it.
macro(uotflow_find_gtest)
  if(NOT UOTFLOW_GTEST_FROM_SOURCE)
    if(UOTFLOW_DEPS_DIR)
      find_package(GTest QUIET)
    else()
      find_package(GTest REQUIRED)
    endif()
  endif()
  if(NOT TARGET GTest::gtest OR NOT TARGET GTest::gtest_main)
    set(_uotflow_gtest_src "${UOTFLOW_GTEST_SOURCE_DIR}")
    if(NOT _uotflow_gtest_src)
      if(UOTFLOW_DEPS_DIR AND EXISTS "${UOTFLOW_DEPS_DIR}/src/googletest/CMakeLists.txt")
        set(_uotflow_gtest_src "${UOTFLOW_DEPS_DIR}/src/googletest")
      else()
        set(_uotflow_gtest_src "/usr/src/googletest")
      endif()
    endif()
    if(NOT EXISTS "${_uotflow_gtest_src}/CMakeLists.txt")
      message(FATAL_ERROR "GoogleTest: neither find_package(GTest) nor sources in '${_uotflow_gtest_src}' "
                          "(run scripts/device_deps.sh, or set UOTFLOW_GTEST_SOURCE_DIR)")
    endif()
    message(STATUS "uotflow: GoogleTest built from ${_uotflow_gtest_src}")
    set(INSTALL_GTEST OFF CACHE BOOL "Install GoogleTest (off: built for the uotflow tests only)" FORCE)
    add_subdirectory("${_uotflow_gtest_src}" "${PROJECT_BINARY_DIR}/googletest" EXCLUDE_FROM_ALL)
    foreach(_uotflow_lib gtest gtest_main gmock gmock_main)
      if(TARGET ${_uotflow_lib} AND NOT TARGET GTest::${_uotflow_lib})
        add_library(GTest::${_uotflow_lib} ALIAS ${_uotflow_lib})
      endif()
    endforeach()
  endif()
endmacro()
