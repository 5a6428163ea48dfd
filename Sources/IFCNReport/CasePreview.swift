import Foundation
import IFCNEvaluation
import IFCNVolume

/// The preview images of a case: its mid-sagittal and mid-coronal slices with instances overlaid.
public enum CasePreview {
    /// `ifcn segment --preview`: the two slices of the scan with the predicted instances coloured and numbered.
    public static func segmentation(image: Volume, labels: LabelVolume) -> RGBImage {
        let renderer = SliceRenderer(grid: image.grid, image: image, centreOn: labels)
        let overlay = LabelOverlay(labels: labels)
        return composePanels(SliceView.allCases.map { ($0.rawValue.uppercased(), renderer.render($0, overlay: overlay)) })
    }

    /// Prediction against reference on the reference's grid: sagittal prediction, sagittal reference, coronal
    /// prediction, coronal reference. A predicted instance takes the colour of the reference vertebra it is
    /// matched to; false positives are hatched red and white. `image` may be nil (labels on black).
    public static func comparison(image: Volume?, reference: LabelVolume, prediction: LabelVolume,
                                  evaluation: CaseEvaluation) -> RGBImage {
        var matchedTo: [Int32: Int32] = [:]
        for v in evaluation.vertebrae { if let p = v.predictedLabel { matchedTo[p] = v.referenceLabel } }
        let renderer = SliceRenderer(grid: reference.grid, image: image, centreOn: reference)
        let predicted = LabelOverlay(labels: prediction, striped: Set(evaluation.falsePositives)) { label in
            matchedTo[label].map { LabelPalette.color($0) }
        }
        let expert = LabelOverlay(labels: reference)
        var panels: [(title: String, image: RGBImage)] = []
        for view in SliceView.allCases {
            let name = view.rawValue.uppercased()
            panels.append((name + " PREDICTION", renderer.render(view, overlay: predicted)))
            panels.append((name + " REFERENCE", renderer.render(view, overlay: expert)))
        }
        return composePanels(panels)
    }

    /// Reads a reference, a prediction and (when given) the CT, and brings the prediction and the CT onto the
    /// reference's grid (nearest neighbour and trilinear resampling) when they are stored on another one.
    public static func comparison(imagePath: String?, referencePath: String, predictionPath: String,
                                  evaluation: CaseEvaluation) throws -> RGBImage {
        let reference = try VolumeIO.readLabels(referencePath)
        var prediction = try VolumeIO.readLabels(predictionPath)
        let g = reference.grid
        let tolerance = 1e-3 * min(g.spacing.min(), 1)
        if !prediction.grid.isClose(to: g, tolerance: tolerance) { prediction = resample(prediction, onto: g) }
        var image: Volume?
        if let imagePath {
            var ct = try VolumeIO.read(imagePath)
            if !ct.grid.isClose(to: g, tolerance: tolerance) { ct = resample(ct, onto: g, interpolation: .linear, fill: -1024) }
            image = ct
        }
        return comparison(image: image, reference: reference, prediction: prediction, evaluation: evaluation)
    }

    /// The CT scan of a case for a preview, found without being told: the `input` that `ifcn segment` recorded in
    /// `<prediction stem>.json` beside the prediction, else a scan beside the reference named like it
    /// (`<case>_ct.<ext>` or `<case>.<ext>`). nil when none exists.
    public static func findImage(caseName: String, referencePath: String, predictionPath: String) -> String? {
        let fm = FileManager.default
        let predictionDir = (predictionPath as NSString).deletingLastPathComponent
        let segmentJSON = (predictionDir as NSString).appendingPathComponent(caseName + ".json")
        if let data = fm.contents(atPath: segmentJSON),
           let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let input = object["input"] as? String, fm.isReadableFile(atPath: input) {
            return input
        }
        let referenceDir = (referencePath as NSString).deletingLastPathComponent
        for stem in [caseName + "_ct", caseName] {
            for ext in VolumeIO.extensions {
                let candidate = (referenceDir as NSString).appendingPathComponent(stem + ext)
                if candidate != referencePath, fm.isReadableFile(atPath: candidate) { return candidate }
            }
        }
        return nil
    }
}
