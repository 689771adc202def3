using System.CommandLine;

namespace Dnm.Node.Commands;

/// <summary>`dnm map`: where each sample lands on a checkpoint's map (placements.csv), and the map's pictures.</summary>
public static class MapCommand
{
    public static Command Create(CliContext context)
    {
        var inputs = new CheckpointInputs();
        var outDir = new Option<string>("--out") { Description = "Folder for placements.csv, prototypes.png, map-labels.png and umatrix.png", Required = true, HelpName = "dir" };
        var command = new Command("map", "Place a dataset on a checkpoint's map: writes placements.csv (index, key, label, class, row, col, distance) and the map pictures");
        inputs.AddTo(command);
        command.Add(outDir);
        command.SetAction(parsed =>
        {
            var dir = Path.GetFullPath(parsed.GetValue(outDir)!);
            using var session = inputs.Open(parsed, context, context.Error);
            var map = session.Map;
            var placement = map.Place(session.Data, context.Cancel);
            Directory.CreateDirectory(dir);
            var csv = Path.Combine(dir, "placements.csv");
            map.WritePlacements(csv, placement, session.Data);
            var labelMap = map.LabelNodes(session.Reference, context.Cancel);
            var pictures = map.RenderPictures(dir, labelMap, session.Reference?.ClassNames ?? []);
            context.Out.WriteLine($"placed {placement.Bmu.Length} samples of {session.Data.Name} on the {map.Config.Map} map:");
            foreach (var file in pictures.Prepend(csv)) context.Out.WriteLine($"  {file}");
            return CliErrors.Ok;
        });
        return command;
    }
}
