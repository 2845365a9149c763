# Install rules of mnemos-alloc, included from the top CMakeLists.txt when
# MNEMOS_ALLOC_INSTALL is ON. Installs:
#   <includedir>/mnemos/**.hpp                     the public headers (detail/ too)
#   <libdir>/libmnemos_alloc.a (or .so)            the core (mnemos::alloc)
#   <libdir>/mnemos_alloc_objects/.../global_new.o mnemos::global (an OBJECT library, so that
#                                                  linking it always brings the replacement
#                                                  operators in), when that target exists
#   <libdir>/cmake/mnemos_alloc/                   mnemos_allocConfig.cmake, ...ConfigVersion.cmake,
#                                                  mnemos_allocTargets*.cmake (namespace mnemos::)
#   <libdir>/pkgconfig/mnemos_alloc.pc             for pkg-config
# Usage and options: docs/packaging.md.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(MNEMOS_ALLOC_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/mnemos_alloc"
  CACHE STRING "Where mnemos_allocConfig.cmake is installed (relative to the prefix)")
set(MNEMOS_ALLOC_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig"
  CACHE STRING "Where mnemos_alloc.pc is installed (relative to the prefix)")
mark_as_advanced(MNEMOS_ALLOC_INSTALL_CMAKEDIR MNEMOS_ALLOC_INSTALL_PKGCONFIGDIR)

# The exported targets. mnemos_warnings is linked only as
# $<BUILD_INTERFACE:mnemos_warnings>, so it never reaches the export set (our
# warning flags are never forced on a consumer) and is not installed.
set(_mnemos_export_targets mnemos_alloc)
# mnemos::global (src/global/global_new.cpp, optional): exported when it is built.
if(TARGET mnemos_global)
  list(APPEND _mnemos_export_targets mnemos_global)
endif()

# Threads::Threads in an exported target's link interface (a static library
# exports its PRIVATE links as $<LINK_ONLY:...>) makes the Config file call
# find_dependency(Threads); today the core links nothing, so it does not.
set(MNEMOS_ALLOC_NEEDS_THREADS OFF)
foreach(_t IN LISTS _mnemos_export_targets)
  get_target_property(_links ${_t} LINK_LIBRARIES)
  get_target_property(_iface ${_t} INTERFACE_LINK_LIBRARIES)
  if("${_links};${_iface}" MATCHES "Threads::Threads")
    set(MNEMOS_ALLOC_NEEDS_THREADS ON)
  endif()
endforeach()

install(TARGETS ${_mnemos_export_targets}
  EXPORT mnemos_allocTargets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT mnemos_alloc_development
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT mnemos_alloc_runtime
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT mnemos_alloc_runtime
  OBJECTS DESTINATION "${CMAKE_INSTALL_LIBDIR}/mnemos_alloc_objects" COMPONENT mnemos_alloc_development)
# (Include directories: mnemos_alloc's $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>.)

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/mnemos"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
  COMPONENT mnemos_alloc_development
  FILES_MATCHING PATTERN "*.hpp")

install(EXPORT mnemos_allocTargets
  NAMESPACE mnemos::
  FILE mnemos_allocTargets.cmake
  DESTINATION "${MNEMOS_ALLOC_INSTALL_CMAKEDIR}"
  COMPONENT mnemos_alloc_development)

configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/mnemos_allocConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/mnemos_allocConfig.cmake"
  INSTALL_DESTINATION "${MNEMOS_ALLOC_INSTALL_CMAKEDIR}")

# Before 1.0 a minor release may break the API, so 0.1.x satisfies a request
# for 0.1 but not 0.2; from 1.0 on, any 1.y satisfies a request for 1.x.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_mnemos_compat SameMinorVersion)
else()
  set(_mnemos_compat SameMajorVersion)
endif()
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/mnemos_allocConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY ${_mnemos_compat})

install(FILES
  "${PROJECT_BINARY_DIR}/mnemos_allocConfig.cmake"
  "${PROJECT_BINARY_DIR}/mnemos_allocConfigVersion.cmake"
  DESTINATION "${MNEMOS_ALLOC_INSTALL_CMAKEDIR}"
  COMPONENT mnemos_alloc_development)

# pkg-config: paths relative to the .pc file (${pcfiledir}), so the installed
# tree can be moved and `cmake --install --prefix` at install time works.
if(IS_ABSOLUTE "${MNEMOS_ALLOC_INSTALL_PKGCONFIGDIR}")
  set(MNEMOS_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  set(MNEMOS_PC_PREFIX "\${pcfiledir}")
  string(REGEX REPLACE "[^/]+" ".." _up "${MNEMOS_ALLOC_INSTALL_PKGCONFIGDIR}")
  string(APPEND MNEMOS_PC_PREFIX "/${_up}")
endif()
foreach(_dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_dir}}")
    set(MNEMOS_PC_${_dir} "${CMAKE_INSTALL_${_dir}}")
  else()
    set(MNEMOS_PC_${_dir} "\${prefix}/${CMAKE_INSTALL_${_dir}}")
  endif()
endforeach()
configure_file("${CMAKE_CURRENT_LIST_DIR}/mnemos_alloc.pc.in"
  "${PROJECT_BINARY_DIR}/mnemos_alloc.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/mnemos_alloc.pc"
  DESTINATION "${MNEMOS_ALLOC_INSTALL_PKGCONFIGDIR}"
  COMPONENT mnemos_alloc_development)

unset(_mnemos_export_targets)
unset(_mnemos_compat)
unset(_links)
unset(_iface)
unset(_up)
