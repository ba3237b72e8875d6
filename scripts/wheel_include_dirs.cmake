# Injected by scripts/build_ros_package.sh (CMAKE_PROJECT_INCLUDE); never needed on a machine with
# a ROS install.
#
# The PyPI ROS 2 wheels' *_msgs packages export CMake targets whose include directories name the
# image they were built in: /opt/python/cp3XX-cp3XX/include/python3.XX and that image's numpy
# headers.  Those paths do not exist here, so CMake refuses to generate.  Once the whole
# CMakeLists.txt has been read (every find_package done), point them at this interpreter's.

execute_process(
  COMMAND "${Python3_EXECUTABLE}" -c
    "import sysconfig, numpy; print(sysconfig.get_paths()['include'] + ';' + numpy.get_include())"
  OUTPUT_VARIABLE _wheel_python_dirs OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
list(GET _wheel_python_dirs 0 WHEEL_PYTHON_INCLUDE_DIR)
list(GET _wheel_python_dirs 1 WHEEL_NUMPY_INCLUDE_DIR)

function(_map_wheel_include_dirs)
  get_property(targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(target IN LISTS targets)
    get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT dirs OR NOT dirs MATCHES "^/opt/python/|;/opt/python/")
      continue()
    endif()
    set(mapped "")
    foreach(dir IN LISTS dirs)
      if(dir MATCHES "^/opt/python/[^/]+/include/python3")
        set(dir "${WHEEL_PYTHON_INCLUDE_DIR}")
      elseif(dir MATCHES "^/opt/python/.*/numpy/(_core/)?include$")
        set(dir "${WHEEL_NUMPY_INCLUDE_DIR}")
      endif()
      list(APPEND mapped "${dir}")
    endforeach()
    set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${mapped}")
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _map_wheel_include_dirs)
