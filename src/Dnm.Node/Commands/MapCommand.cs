using System.CommandLine;
using Dnm.Core.IO;

namespace Dnm.Node.Commands;

/// <summary>`dnm map`: where each sample lands on a checkpoint's map (placements.csv), and the map's pictures.</summary>
public static class MapCommand
{
    public static Command Create(CliContext context)
    {
        var inputs = new CheckpointInputs();
        var outDir = new Option<string>("--out") { Description = "Folder for placements.csv and the map's pictures", Required = true, HelpName = "dir" };
        var embeddings = new Option<string>("--embeddings")
        {
            Description = "Also write each sample's embedding z to this NumPy .npy file (float32, one row per sample, in placements.csv's order)",
            HelpName = "file.npy",
        };
        var command = new Command("map", "Place a dataset on a checkpoint's map: writes placements.csv (index, key, label, class, row, col, distance) and the map pictures");
        inputs.AddTo(command);
        command.Add(outDir);
        command.Add(embeddings);
        command.SetAction(parsed =>
        {
            var dir = Path.GetFullPath(parsed.GetValue(outDir)!);
            using var session = inputs.Open(parsed, context, context.Error);
            var map = session.Map;
            var placement = map.Place(session.Data, context.Cancel, keepEmbeddings: parsed.GetValue(embeddings) is not null);
            Directory.CreateDirectory(dir);
            var csv = Path.Combine(dir, "placements.csv");
            map.WritePlacements(csv, placement, session.Data);
            var labelMap = map.LabelNodes(session.Reference, context.Cancel);
            var written = new List<string> { csv };
            if (parsed.GetValue(embeddings) is { } npy)
            {
                var npyPath = Path.GetFullPath(npy);
                NpyFile.Write(npyPath, placement.Embeddings, placement.Bmu.Length, map.Model.Som.Dim);
                written.Add(npyPath);
            }
            written.AddRange(map.RenderPictures(dir, labelMap, session.Reference?.ClassNames ?? [], placement));
            context.Out.WriteLine($"placed {placement.Bmu.Length} samples of {session.Data.Name} on the {map.Config.Map} map:");
            foreach (var file in written) context.Out.WriteLine($"  {file}");
            return CliErrors.Ok;
        });
        return command;
    }
}
