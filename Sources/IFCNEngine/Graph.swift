import IFCNCompute

/// A region of the graph's activation space: [channels, extent] at `offset`. A training network places each
/// block and its gradient in its arena (`TrainingArena`) with the same layout inside the block, so views
/// (a skip connection stored inside its concatenation) share their gradient too.
struct Activation {
    let offset: Int
    let channels: Int
    let extent: Extent3
    var count: Int { channels * extent.voxels }
    func channelSlice(_ start: Int, _ n: Int) -> Activation {
        Activation(offset: offset + start * extent.voxels, channels: n, extent: extent)
    }
}

/// One batch-norm module: its parameters, running statistics and use count.
struct BatchNormModule {
    let prefix: String
    let channels: Int
    let gamma: Int, beta: Int       // parameter offsets
    let mean: Int, variance: Int    // buffer offsets
}

/// One layer application. Parameter/buffer fields are offsets into the flat buffers.
enum Op {
    case conv3(x: Activation, y: Activation, weight: Int, bias: Int?)
    case batchNorm(x: Activation, y: Activation, module: Int, saved: Int, relu: Bool)
    case relu(Activation)                       // in place
    case maxPool(x: Activation, y: Activation)
    case upsample(x: Activation, y: Activation)
    case conv1(x: Activation, y: Activation, weight: Int, bias: Int?)
    case globalMax(x: Activation, y: Activation)
    case sigmoid(x: Activation, y: Activation)
}

/// The network as a flat list of ops over one activation arena, built once per configuration.
struct Graph {
    var parameters = TensorTable()
    var buffers = TensorTable()
    var batchNorms: [BatchNormModule] = []
    private var bnIndex: [String: Int] = [:]
    var ops: [Op] = []
    var arenaSize = 0
    /// Start offsets of the allocated activation blocks, in allocation order (views lie inside one).
    var blockStarts: [Int] = []
    var savedStatsSize = 0

    var input: Activation!
    var segLogit: Activation!
    var segProb: Activation!
    var clsLogit: Activation!

    /// Parameter names in registration order with their initialisation (fan-in for PyTorch's defaults).
    var initialisation: [String: ParameterInit] = [:]

    mutating func activation(_ channels: Int, _ extent: Extent3) -> Activation {
        let a = Activation(offset: arenaSize, channels: channels, extent: extent)
        blockStarts.append(arenaSize)
        arenaSize += a.count
        return a
    }

    mutating func param(_ name: String, _ shape: [Int], _ initKind: ParameterInit) -> Int {
        initialisation[name] = initKind
        return parameters.register(name, shape: shape)
    }

    mutating func conv3Params(_ prefix: String, _ cin: Int, _ cout: Int, bias: Bool) -> (Int, Int?) {
        let fanIn = cin * 27
        let w = param(prefix + ".weight", [cout, cin, 3, 3, 3], .uniformFanIn(fanIn))
        let b = bias ? param(prefix + ".bias", [cout], .uniformFanIn(fanIn)) : nil
        return (w, b)
    }

    mutating func batchNormModule(_ prefix: String, _ channels: Int) -> Int {
        if let i = bnIndex[prefix] { return i }
        let g = param(prefix + ".weight", [channels], .constant(1))
        let b = param(prefix + ".bias", [channels], .constant(0))
        let m = buffers.register(prefix + ".running_mean", shape: [channels])
        let v = buffers.register(prefix + ".running_var", shape: [channels])
        batchNorms.append(BatchNormModule(prefix: prefix, channels: channels, gamma: g, beta: b, mean: m, variance: v))
        bnIndex[prefix] = batchNorms.count - 1
        return batchNorms.count - 1
    }

    mutating func batchNorm(_ x: Activation, into y: Activation, _ prefix: String, relu: Bool) {
        let module = batchNormModule(prefix, x.channels)
        let saved = savedStatsSize
        savedStatsSize += BatchNormSaved.count(channels: x.channels)
        ops.append(.batchNorm(x: x, y: y, module: module, saved: saved, relu: relu))
    }

    mutating func conv3(_ x: Activation, _ cout: Int, _ prefix: String, bias: Bool) -> Activation {
        let (w, b) = conv3Params(prefix, x.channels, cout, bias: bias)
        let y = activation(cout, x.extent)
        ops.append(.conv3(x: x, y: y, weight: w, bias: b))
        return y
    }

    /// Paper block: (conv no bias -> BN -> ReLU) twice. Writes its result into `output` if given.
    mutating func paperBlock(_ x: Activation, _ cout: Int, _ name: String, output: Activation? = nil) -> Activation {
        let c1 = conv3(x, cout, name + ".conv1", bias: false)
        let a1 = activation(cout, x.extent)
        batchNorm(c1, into: a1, name + ".bn1", relu: true)
        let c2 = conv3(a1, cout, name + ".conv2", bias: false)
        let a2 = output ?? activation(cout, x.extent)
        batchNorm(c2, into: a2, name + ".bn2", relu: true)
        return a2
    }

    /// Seed block (nn.Sequential): conv(bias) -> ReLU -> BN, twice; indices 0, 2, 3, 5.
    mutating func seedBlock(_ x: Activation, _ cout: Int, _ name: String, output: Activation? = nil) -> Activation {
        let c1 = conv3(x, cout, name + ".0", bias: true)
        ops.append(.relu(c1))
        let a1 = activation(cout, x.extent)
        batchNorm(c1, into: a1, name + ".2", relu: false)
        let c2 = conv3(a1, cout, name + ".3", bias: true)
        ops.append(.relu(c2))
        let a2 = output ?? activation(cout, x.extent)
        batchNorm(c2, into: a2, name + ".5", relu: false)
        return a2
    }

    mutating func maxPool(_ x: Activation) -> Activation {
        let y = activation(x.channels, x.extent.halved)
        ops.append(.maxPool(x: x, y: y))
        return y
    }

    /// Concatenation buffer [skip, upsampled] whose first half is written by the skip's producer.
    mutating func concatBuffer(_ channels: Int, _ extent: Extent3) -> (cat: Activation, skip: Activation, upper: Activation) {
        let cat = activation(2 * channels, extent)
        return (cat, cat.channelSlice(0, channels), cat.channelSlice(channels, channels))
    }

    mutating func classificationHead(from bottom: Activation, block: (inout Graph, Activation, Int) -> Activation,
                                     blocks: Int, linearPrefix: String) {
        var y = bottom
        for i in 0..<blocks { y = block(&self, maxPool(y), i) }
        let g = activation(y.channels, Extent3(1, 1, 1))
        ops.append(.globalMax(x: y, y: g))
        let c = y.channels
        let w = param(linearPrefix + ".weight", [1, c], .uniformFanIn(c))
        let b = param(linearPrefix + ".bias", [1], .uniformFanIn(c))
        clsLogit = activation(1, Extent3(1, 1, 1))
        ops.append(.conv1(x: g, y: clsLogit, weight: w, bias: b))
    }

    static func build(_ config: NetworkConfig) -> Graph {
        var g = Graph()
        let c = config.channels
        let full = Extent3(cube: config.patch)
        g.input = g.activation(2, full)
        switch config.variant {
        case .paper:
            let l0 = g.concatBuffer(c, full)
            let s0 = g.paperBlock(g.input, c, "down0", output: l0.skip)
            let l1 = g.concatBuffer(c, full.halved)
            let s1 = g.paperBlock(g.maxPool(s0), c, "down1", output: l1.skip)
            let l2 = g.concatBuffer(c, full.halved.halved)
            let s2 = g.paperBlock(g.maxPool(s1), c, "down2", output: l2.skip)
            let bottom = g.paperBlock(g.maxPool(s2), c, "down3")
            g.ops.append(.upsample(x: bottom, y: l2.upper))
            let u2 = g.paperBlock(l2.cat, c, "up2")
            g.ops.append(.upsample(x: u2, y: l1.upper))
            let u1 = g.paperBlock(l1.cat, c, "up1")
            g.ops.append(.upsample(x: u1, y: l0.upper))
            let u0 = g.paperBlock(l0.cat, c, "up0")
            let w = g.param("seg.weight", [1, c, 1, 1, 1], .uniformFanIn(c))
            let b = g.param("seg.bias", [1], .uniformFanIn(c))
            g.segLogit = g.activation(1, full)
            g.ops.append(.conv1(x: u0, y: g.segLogit, weight: w, bias: b))
            g.segProb = g.activation(1, full)
            g.ops.append(.sigmoid(x: g.segLogit, y: g.segProb))
            g.classificationHead(from: bottom, block: { g, x, i in g.paperBlock(x, c, "cls.\(i)") },
                                 blocks: config.classificationBlocks, linearPrefix: "fc")
        case .seed:
            // Register in the reference's module order so the flat buffer follows its state_dict.
            for (name, cin, cout) in [("conv_initial", 2, c), ("conv_final", c, 1), ("conv_rest", c, c), ("conv_up", 2 * c, c)] {
                _ = g.conv3Params(name + ".0", cin, cout, bias: true)
                _ = g.batchNormModule(name + ".2", cout)
                _ = g.conv3Params(name + ".3", cout, cout, bias: true)
                _ = g.batchNormModule(name + ".5", cout)
            }
            let l0 = g.concatBuffer(c, full)
            let initial = g.seedBlock(g.input, c, "conv_initial")
            let x0 = g.seedBlock(initial, c, "conv_rest", output: l0.skip)
            let l1 = g.concatBuffer(c, full.halved)
            let x1 = g.seedBlock(g.maxPool(x0), c, "conv_rest", output: l1.skip)
            let l2 = g.concatBuffer(c, full.halved.halved)
            let x2 = g.seedBlock(g.maxPool(x1), c, "conv_rest", output: l2.skip)
            let bottom = g.seedBlock(g.maxPool(x2), c, "conv_rest")
            g.ops.append(.upsample(x: bottom, y: l2.upper))
            let u2 = g.seedBlock(l2.cat, c, "conv_up")
            g.ops.append(.upsample(x: u2, y: l1.upper))
            let u1 = g.seedBlock(l1.cat, c, "conv_up")
            g.ops.append(.upsample(x: u1, y: l0.upper))
            let u0 = g.seedBlock(l0.cat, c, "conv_up")
            g.segLogit = g.seedBlock(u0, 1, "conv_final")
            g.segProb = g.activation(1, full)
            g.ops.append(.sigmoid(x: g.segLogit, y: g.segProb))
            g.classificationHead(from: bottom, block: { g, x, _ in g.seedBlock(x, c, "conv_rest") },
                                 blocks: config.classificationBlocks, linearPrefix: "dense")
        }
        return g
    }
}

/// PyTorch's default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for conv and linear
/// weights and biases (kaiming_uniform with a = sqrt(5)), constants for batch norm.
enum ParameterInit {
    case uniformFanIn(Int)
    case constant(Float)
}
