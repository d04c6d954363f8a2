# `cmake --install` of the production library and its exported CMake package:
#
#   find_package(IpexTune REQUIRED)
#   target_link_libraries(app PRIVATE IpexTune::ipex_tune)
#
# IpexTune::ipex_tune is an INTERFACE umbrella over ipt_core: linking it brings the static
# libraries of the core (PIC), the shared ipt_kernels (shared so the registration of the `ipt`
# torch ops is never dropped), the public headers, libtorch, oneDNN and the libraries they use.
# The tuner, the store, the workloads and the front ends are not installed.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(IPT_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/IpexTune)
set(IPT_INSTALLED_LIBRARIES ipt_base ipt_recipes ipt_platform ipt_calibration ipt_kernels ipt_core)

add_library(ipex_tune INTERFACE)
add_library(IpexTune::ipex_tune ALIAS ipex_tune)
target_link_libraries(ipex_tune INTERFACE ipt::core)

# In the tree, headers are found through include_directories(${PROJECT_SOURCE_DIR}); installed,
# they keep the same paths ("core/runtime.h") under <prefix>/include.
foreach(lib IN LISTS IPT_INSTALLED_LIBRARIES ITEMS ipex_tune)
  target_include_directories(${lib} INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
endforeach()
install(TARGETS ${IPT_INSTALLED_LIBRARIES} ipt_torch ipt_dnnl ipex_tune
  EXPORT IpexTuneTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Whole folders' headers, globbed at install time so a new header needs no edit here. The
# strict YAML reader is internal (it includes yaml-cpp, which the public headers never do).
foreach(dir base recipes core kernels)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/${dir}
    FILES_MATCHING PATTERN "*.h" PATTERN "yaml_reader.h" EXCLUDE)
endforeach()

install(EXPORT IpexTuneTargets NAMESPACE IpexTune:: DESTINATION ${IPT_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/IpexTuneConfig.cmake.in
  ${PROJECT_BINARY_DIR}/IpexTuneConfig.cmake INSTALL_DESTINATION ${IPT_INSTALL_CMAKEDIR})
# 0.x: a minor version may change the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/IpexTuneConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/IpexTuneConfig.cmake
              ${PROJECT_BINARY_DIR}/IpexTuneConfigVersion.cmake
  DESTINATION ${IPT_INSTALL_CMAKEDIR})
