import Foundation
import IFCNEngine
import IFCNEvaluation
import IFCNSegmentation
import IFCNVolume

/// Per-epoch validation: the same iterative segmentation and the same metrics as
/// `ifcn segment` and `ifcn evaluate`, on the preprocessed (canonical) validation scans; `recorder` keeps each
/// case's label map and evaluation for the report.
public func segmentationValidator(options: SegmentationOptions = SegmentationOptions(),
                                  recorder: ValidationRecorder? = nil) -> Validator {
    return { network, info, cases in
        var out = ValidationOutcome()
        let segmenter = Segmenter(network: network, info: info, options: options)
        for c in cases {
            // read now (mapped store or NIfTI) and released at the end of the iteration: one case at a time
            let (image, labels) = try c.volumes()
            let result = segmenter.segmentCanonical(image)
            let reference = LabelMap(labels, spineAxis: 2)
            let prediction = LabelMap(result.labels, spineAxis: 2)
            let e = try evaluateCase(name: c.name, reference: reference, prediction: prediction)
            try recorder?.record(name: c.name, prediction: result.labels, evaluation: e)
            for v in e.vertebrae {
                out.diceSum += v.dice
                out.vertebrae += 1
                if let a = v.assdMM { out.assdSum += a; out.assdCount += 1 }
            }
            out.evaluations += result.evaluations
        }
        return out
    }
}
