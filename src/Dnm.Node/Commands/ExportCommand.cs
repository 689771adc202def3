using System.CommandLine;
using Dnm.Core.Config;
using Dnm.Core.Export;
using Dnm.Core.Training;

namespace Dnm.Node.Commands;

/// <summary>`dnm export`: a checkpoint's model as a file PyTorch reads (scripts/dnm_torch.py rebuilds the model).</summary>
public static class ExportCommand
{
    public static Command Create(CliContext context)
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "Checkpoint file (e.g. <run>/checkpoints/final.ckpt)", Required = true, HelpName = "path" };
        var format = new Option<string>("--format") { Description = "File format", DefaultValueFactory = _ => KebabEnum.Name(ExportFormat.Safetensors) };
        format.AcceptOnlyFromAmong(KebabEnum.Names<ExportFormat>());
        var output = new Option<string>("--out") { Description = "The file to write (replaced atomically)", Required = true, HelpName = "model.safetensors" };
        var command = new Command("export",
            "Write a checkpoint's autoencoder weights (named as PyTorch's state_dict names them), SOM prototypes and config to a safetensors file")
        {
            checkpoint, format, output,
        };
        command.SetAction(parsed =>
        {
            var path = parsed.GetValue(checkpoint)!;
            var kind = KebabEnum.Parse<ExportFormat>("format", parsed.GetValue(format));
            var outPath = Path.GetFullPath(parsed.GetValue(output)!);
            var model = ExportedModel.From(Checkpoint.Load(path));
            model.Write(outPath, kind);
            var prototypes = model.Prototypes;
            context.Out.WriteLine($"exported {path} ({KebabEnum.Name(model.Config.Encoder)} encoder, {model.Config.Map} map, global step {model.GlobalStep}) to {outPath}:");
            context.Out.WriteLine($"  {model.Parameters.Count()} autoencoder tensors ({model.Parameters.Sum(t => t.Data.LongLength):N0} values), " +
                                  $"{ExportedModel.PrototypesName} [{string.Join(",", prototypes.Shape)}], the run's config in the metadata");
            return CliErrors.Ok;
        });
        return command;
    }
}
