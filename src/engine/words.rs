//! The chat's own notices ("ana joined the conversation") in the playbook's `language`.
//!
//! Owns the phrases the engine says as [`super::Speaker::System`]; everything else the visitor
//! reads comes from the playbook's texts. English is the default and for any language not
//! listed (the widget's own words cover the same languages: en, de, pt, es, fr).

use super::Channel;

/// The notices of one language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Words {
    En,
    De,
    Pt,
    Es,
    Fr,
}

impl Words {
    /// The words for a BCP 47 tag (`de`, `pt-BR`): its primary language, English otherwise.
    pub fn for_language(tag: Option<&str>) -> Words {
        let primary = tag
            .and_then(|t| t.split(['-', '_']).next())
            .unwrap_or("")
            .to_ascii_lowercase();
        match primary.as_str() {
            "de" => Words::De,
            "pt" => Words::Pt,
            "es" => Words::Es,
            "fr" => Words::Fr,
            _ => Words::En,
        }
    }

    /// An agent took the chat (a pick-up or a reassignment).
    pub fn joined(self, agent: &str) -> String {
        match self {
            Words::En => format!("{agent} joined the conversation"),
            Words::De => format!("{agent} ist dem Gespräch beigetreten"),
            Words::Pt => format!("{agent} entrou na conversa"),
            Words::Es => format!("{agent} se unió a la conversación"),
            Words::Fr => format!("{agent} a rejoint la conversation"),
        }
    }

    /// The handling agent closed the chat.
    pub fn closed(self, agent: &str) -> String {
        match self {
            Words::En => format!("{agent} closed the conversation"),
            Words::De => format!("{agent} hat das Gespräch beendet"),
            Words::Pt => format!("{agent} encerrou a conversa"),
            Words::Es => format!("{agent} cerró la conversación"),
            Words::Fr => format!("{agent} a fermé la conversation"),
        }
    }

    /// The conversation moved to `channel` (back on the web: "continues here").
    pub fn continues(self, channel: Channel) -> String {
        let app = channel.label();
        match (self, channel) {
            (Words::En, Channel::Web) => "The conversation continues here".into(),
            (Words::De, Channel::Web) => "Das Gespräch geht hier weiter".into(),
            (Words::Pt, Channel::Web) => "A conversa continua aqui".into(),
            (Words::Es, Channel::Web) => "La conversación continúa aquí".into(),
            (Words::Fr, Channel::Web) => "La conversation continue ici".into(),
            (Words::En, _) => format!("The conversation continues on {app}"),
            (Words::De, _) => format!("Das Gespräch geht auf {app} weiter"),
            (Words::Pt, _) => format!("A conversa continua no {app}"),
            (Words::Es, _) => format!("La conversación continúa en {app}"),
            (Words::Fr, _) => format!("La conversation continue sur {app}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_language_picks_the_words_and_english_is_the_rest() {
        assert_eq!(Words::for_language(Some("de")), Words::De);
        assert_eq!(Words::for_language(Some("pt-BR")), Words::Pt);
        assert_eq!(Words::for_language(Some("FR_ca")), Words::Fr);
        assert_eq!(Words::for_language(Some("nl")), Words::En);
        assert_eq!(Words::for_language(None), Words::En);
        assert_eq!(Words::De.joined("ana"), "ana ist dem Gespräch beigetreten");
        assert_eq!(
            Words::Es.continues(Channel::WhatsApp),
            "La conversación continúa en WhatsApp"
        );
        assert_eq!(
            Words::En.continues(Channel::Web),
            "The conversation continues here"
        );
    }
}
