# Compiler flags shared by every fpq target.
add_library(fpq_options INTERFACE)
target_compile_options(fpq_options INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wshadow=local -Wno-unused-parameter>
  # GCC 12 reports false -Wrestrict positives inside libstdc++'s std::string at -O3 (GCC bug 105329).
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU>>:-Wno-restrict>
  # Bit-exactness: never fuse a*b+c into an FMA behind our back (the references do not).
  $<$<COMPILE_LANGUAGE:CXX>:-ffp-contract=off>)
if(FPQ_WERROR)
  target_compile_options(fpq_options INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()
target_include_directories(fpq_options INTERFACE ${PROJECT_SOURCE_DIR}/src)
