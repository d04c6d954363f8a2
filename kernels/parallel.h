// How this library's own loops (at::parallel_for in the embedding bags, interaction, add +
// layer_norm, quantization, concat + batch_norm) spread over threads.
#pragma once

namespace ipt::kernels {

// Distinct threads one at::parallel_for over at::get_num_threads() items runs on. at::parallel_for
// is a header template: it runs serially in any file compiled without OpenMP, however many threads
// libtorch itself uses, so this is the check that the library was built with it.
int ParallelForThreads();

}  // namespace ipt::kernels
