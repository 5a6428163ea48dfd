// swift-tools-version:6.0
import PackageDescription

// Layers, bottom up:
//   IFCNSupport   dependency-free helpers used by every layer: parallel loops, background jobs and overlapped
//                 stages, SplitMix64, atomic file writes, stderr lines
//   C shims over system libraries (Open MPI, OpenBLAS, nifticlib, libpng) and, loaded at run time with
//   dlopen, the NVIDIA libraries (CCUDA: CUDA driver, cuDNN, NVRTC; nothing CUDA at build time);
//   CConvKernels: direct 3x3x3 convolution kernels in AVX2 intrinsics, chosen at run time
//   IFCNCompute   compute-backend interface, the backend factory, the CPU backend (CPU/) and the
//                 CUDA backend (CUDA/: cuDNN convolutions, NVRTC-compiled kernels)
//   IFCNEngine    the iterative FCN: parameters, forward/backward, loss, Adam, checkpoints
//   IFCNVolume    medical volumes: geometry, NIfTI/MetaImage IO, resampling, EDT, preprocessing
//   IFCNDistributed  MPI communicator (allreduce, broadcast, ...)
//   IFCNEvaluation   Dice, surface distances, instance matching
//   IFCNSegmentation iterative instance segmentation of whole scans
//   IFCNTraining  data-parallel training loop, sampling, augmentation
//   IFCNReport    HTML reports: PNG previews (libpng), slice rendering, SVG charts
//   ifcn          the command-line tool
let swiftSettings: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release)),
]

let package = Package(
    name: "ifcn",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ifcn", targets: ["ifcn"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .target(name: "CMPIShim", dependencies: ["COpenMPI"]),
        .target(name: "CNIfTI",
                cSettings: [.unsafeFlags(["-I/usr/include/nifti"])],
                linkerSettings: [.linkedLibrary("nifti2"), .linkedLibrary("znz"), .linkedLibrary("z")]),
        .target(name: "CCUDA", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "CConvKernels", cSettings: [.unsafeFlags(["-O3"])]),
        .systemLibrary(name: "CLibPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .target(name: "IFCNSupport", swiftSettings: swiftSettings),
        .target(name: "IFCNCompute", dependencies: ["IFCNSupport", "COpenBLAS", "CCUDA", "CConvKernels"], swiftSettings: swiftSettings),
        .target(name: "IFCNEngine", dependencies: ["IFCNSupport", "IFCNCompute"], swiftSettings: swiftSettings),
        .target(name: "IFCNVolume", dependencies: ["IFCNSupport", "CNIfTI"], swiftSettings: swiftSettings),
        .target(name: "IFCNDistributed", dependencies: ["IFCNSupport", "CMPIShim"], swiftSettings: swiftSettings),
        .target(name: "IFCNEvaluation", dependencies: ["IFCNSupport", "IFCNVolume"], swiftSettings: swiftSettings),
        .target(name: "IFCNSegmentation", dependencies: ["IFCNSupport", "IFCNCompute", "IFCNEngine", "IFCNVolume"],
                swiftSettings: swiftSettings),
        .target(name: "IFCNTraining",
                dependencies: ["IFCNSupport", "IFCNCompute", "IFCNEngine", "IFCNVolume", "IFCNDistributed",
                               "IFCNSegmentation", "IFCNEvaluation"],
                swiftSettings: swiftSettings),
        .target(name: "IFCNReport",
                dependencies: ["IFCNSupport", "IFCNVolume", "IFCNEvaluation", "IFCNTraining", "CLibPNG"],
                swiftSettings: swiftSettings),
        .executableTarget(name: "ifcn",
                          dependencies: ["IFCNSupport", "IFCNCompute", "IFCNEngine", "IFCNVolume", "IFCNDistributed", "IFCNTraining",
                                         "IFCNSegmentation", "IFCNEvaluation", "IFCNReport",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: swiftSettings),
        .testTarget(name: "IFCNEngineTests", dependencies: ["IFCNEngine", "IFCNCompute", "CCUDA", "IFCNTestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "IFCNVolumeTests", dependencies: ["IFCNVolume", "IFCNTestSupport"], resources: [.copy("Fixtures")]),
        .target(name: "IFCNTestSupport", path: "Tests/IFCNTestSupport"),
        .testTarget(name: "IFCNDistributedTests", dependencies: ["IFCNDistributed", "IFCNEngine", "CMPIShim", "IFCNTestSupport"]),
        .testTarget(name: "IFCNEvaluationTests", dependencies: ["IFCNEvaluation", "IFCNVolume", "IFCNSupport", "IFCNTestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "IFCNSegmentationTests", dependencies: ["IFCNSegmentation", "IFCNCompute", "IFCNEngine", "IFCNVolume", "IFCNTestSupport"]),
        .testTarget(name: "IFCNTrainingTests", dependencies: ["IFCNTraining", "IFCNEngine", "IFCNVolume", "IFCNTestSupport"]),
        .testTarget(name: "IFCNSupportTests", dependencies: ["IFCNSupport"]),
        .testTarget(name: "IFCNReportTests", dependencies: ["IFCNReport", "IFCNVolume", "IFCNEvaluation", "IFCNTestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
