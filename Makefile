# The two commands of the quick start, and a few conveniences. Everything goes through
# scripts/setup.sh, which installs what is missing, configures and builds.
BUILD_DIR ?= build
JOBS ?= 2
# Paths relative to the checkout, so ccache hits across clones in different folders.
CCACHE_BASEDIR ?= $(CURDIR)
export BUILD_DIR JOBS CCACHE_BASEDIR

.PHONY: all setup demo test format format-check bench clean

all: setup

setup:
	scripts/setup.sh

demo: setup
	scripts/demo.sh

test: setup
	scripts/format-check.sh
	cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS)

format:
	git ls-files '*.cpp' '*.h' | xargs clang-format -i

format-check:
	scripts/format-check.sh

clean:
	rm -rf $(BUILD_DIR)
