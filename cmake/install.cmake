# install(): the shared library, the public headers and a CMake package config, so that another
# project finds uotflow with find_package(uotflow) and links uotflow::uotflow; and the Python
# package when it is built. `make install` (cmake --install build) puts them under
# CMAKE_INSTALL_PREFIX (default /usr/local).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS uotflow EXPORT uotflowTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/uotflow DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(UOTFLOW_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/uotflow)
install(EXPORT uotflowTargets NAMESPACE uotflow:: DESTINATION ${UOTFLOW_CMAKE_DIR})
configure_package_config_file(cmake/uotflowConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/uotflowConfig.cmake
                              INSTALL_DESTINATION ${UOTFLOW_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/uotflowConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/uotflowConfig.cmake ${PROJECT_BINARY_DIR}/uotflowConfigVersion.cmake
        DESTINATION ${UOTFLOW_CMAKE_DIR})
