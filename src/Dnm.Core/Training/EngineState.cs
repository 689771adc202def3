using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>
/// Moves a replica's long-lived state (θ, φ, Adam m and v, W) to and from host arrays: for
/// checkpoints, for a worker that joins mid-run, and for the replica checksum.
/// </summary>
public static class EngineState
{
    /// <summary>θ, φ, W (<see cref="DnmModel.Export"/>), Adam's m and v, and the nodes' class counts of semi-supervised training, by name.</summary>
    public static IReadOnlyList<NamedArray> Export(StepEngine engine)
    {
        var list = new List<NamedArray>();
        var model = engine.Model;
        for (int i = 0; i < model.Parameters.Count; i++)
        {
            list.Add(ToArray($"param/{model.ParameterNames[i]}", model.Parameters[i]));
            list.Add(ToArray($"adam.m/{model.ParameterNames[i]}", engine.Optimizer.FirstMoments[i]));
            list.Add(ToArray($"adam.v/{model.ParameterNames[i]}", engine.Optimizer.SecondMoments[i]));
        }
        list.Add(ToArray("som/w", model.Som.Prototypes));
        if (engine.Classes is { } classes) list.Add(new NamedArray(NodeClasses.CheckpointName, [classes.Nodes, classes.Classes], classes.Counts.ToArray()));
        return list;
    }

    /// <summary>
    /// The names and shapes <see cref="Export"/> gives for the model <paramref name="config"/> describes, in its order, computed
    /// without building the model (a checkpoint is checked against it before its tensors are allocated).
    /// </summary>
    public static IReadOnlyList<ParameterShape> Layout(DnmConfig config, ImageShape shape)
    {
        var list = new List<ParameterShape>();
        foreach (var p in ModelLayout.Parameters(config, shape))
        {
            list.Add(p with { Name = $"param/{p.Name}" });
            list.Add(p with { Name = $"adam.m/{p.Name}" });
            list.Add(p with { Name = $"adam.v/{p.Name}" });
        }
        list.Add(new ParameterShape("som/w", ModelLayout.Prototypes(config)));
        return list;
    }

    /// <summary>Loads exported state; any missing tensor or shape difference is a clear error.</summary>
    public static void Import(StepEngine engine, IReadOnlyList<NamedArray> arrays, long adamSteps)
    {
        var byName = arrays.ToDictionary(a => a.Name);
        engine.Model.Import(byName);
        using var _ = no_grad();
        for (int i = 0; i < engine.Model.Parameters.Count; i++)
        {
            Load(byName, $"adam.m/{engine.Model.ParameterNames[i]}", engine.Optimizer.FirstMoments[i]);
            Load(byName, $"adam.v/{engine.Model.ParameterNames[i]}", engine.Optimizer.SecondMoments[i]);
        }
        engine.Optimizer.Steps = adamSteps;
        if (engine.Classes is { } classes)
        {
            if (!byName.TryGetValue(NodeClasses.CheckpointName, out var counts))
                throw new CheckpointException($"state has no tensor '{NodeClasses.CheckpointName}': it was not written by a semi-supervised run");
            if (!counts.Shape.SequenceEqual(new long[] { classes.Nodes, classes.Classes }))
                throw new CheckpointException($"tensor '{NodeClasses.CheckpointName}' has shape [{string.Join(",", counts.Shape)}] but this run needs [{classes.Nodes},{classes.Classes}]: the dataset's classes differ");
            classes.Set(counts.Data);
        }
    }

    /// <summary>The model's checksum (<see cref="DnmModel.Checksum"/>): θ, φ and W.</summary>
    public static ulong Checksum(StepEngine engine) => engine.Model.Checksum();

    internal static NamedArray ToArray(string name, Tensor t)
    {
        using var host = t.detach().cpu().contiguous();
        return new NamedArray(name, t.shape.ToArray(), host.data<float>().ToArray());
    }

    internal static void Load(IReadOnlyDictionary<string, NamedArray> byName, string name, Tensor target)
    {
        if (!byName.TryGetValue(name, out var a))
            throw new CheckpointException($"state has no tensor '{name}': it was written for a different model");
        if (!a.Shape.SequenceEqual(target.shape))
            throw new CheckpointException(
                $"tensor '{name}' has shape [{string.Join(",", a.Shape)}] but this model needs [{string.Join(",", target.shape)}]: the model configuration differs");
        target.copy_(torch.tensor(a.Data, a.Shape, dtype: float32, device: target.device));
    }
}
