import ArgumentParser
import IFCNVolume

/// `--allow-external-data`, shared by the commands that read scans and label maps.
struct ReadingOptions: ParsableArguments {
    @Flag(help: "Let a MetaImage header (.mhd) name a data file outside its own folder (by default only a file beside the header is read).")
    var allowExternalData = false

    var volumeReadOptions: VolumeReadOptions { VolumeReadOptions(allowExternalData: allowExternalData) }
}
